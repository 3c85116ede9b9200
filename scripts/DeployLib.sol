// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

import {DevnetToken} from "../contracts/DevnetToken.sol";
import {StakeRegistry} from "../contracts/StakeRegistry.sol";
import {TaskMarket} from "../contracts/TaskMarket.sol";

/// @title DeployLib
/// @notice The one deploy path of Synod, shared by `scripts/Deploy.s.sol` and the forge test fixture.
library DeployLib {
    /// @notice Deploy parameters.
    /// @param token An existing ERC-20, or zero to deploy a `DevnetToken`.
    /// @param minNodeStake Minimum stake of a node.
    /// @param minValidatorStake Minimum stake of a validator.
    /// @param unbondingDelay Unbonding delay in seconds (also the longest task lifetime).
    /// @param minPhaseDuration Shortest phase a job may ask for, seconds (>= 30 on real deployments).
    /// @param treasury Receiver of slashed stake.
    /// @param owner Owner of the registry: the account that sends the deploy transactions (it wires the
    /// market during the deploy, so it must be the caller of `deploy`'s transactions).
    struct Params {
        address token;
        uint256 minNodeStake;
        uint256 minValidatorStake;
        uint256 unbondingDelay;
        uint256 minPhaseDuration;
        address treasury;
        address owner;
    }

    /// @notice What `deploy` created (or reused, for the token).
    struct Deployment {
        IERC20 token;
        bool devnetToken;
        StakeRegistry registry;
        TaskMarket market;
    }

    /// @notice Defaults for a local devnet: 100-token minimum stakes, 7-day unbonding, 30-second shortest phase.
    function defaults(address owner) internal pure returns (Params memory) {
        return Params({
            token: address(0),
            minNodeStake: 100e18,
            minValidatorStake: 100e18,
            unbondingDelay: 7 days,
            minPhaseDuration: 30,
            treasury: owner,
            owner: owner
        });
    }

    /// @notice Deploy the token (unless given), the registry and the market, and wire them.
    function deploy(Params memory p) internal returns (Deployment memory d) {
        if (p.token == address(0)) {
            d.token = IERC20(address(new DevnetToken()));
            d.devnetToken = true;
        } else {
            d.token = IERC20(p.token);
        }
        d.registry = new StakeRegistry(
            d.token, p.minNodeStake, p.minValidatorStake, p.unbondingDelay, p.treasury, p.owner
        );
        d.market = new TaskMarket(d.registry, p.minPhaseDuration);
        d.registry.setTaskMarket(address(d.market));
    }
}
