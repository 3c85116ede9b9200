// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Vm} from "../tests/contracts/utils/Vm.sol";
import {DeployLib} from "./DeployLib.sol";

/// @title Deploy
/// @notice Deploys Synod (DevnetToken unless SYNOD_TOKEN is set, StakeRegistry, TaskMarket) and writes the
/// deployments file. The sender comes from forge's command line (`--private-key` on anvil, `--account` /
/// `--keystore` elsewhere). Env (defaults): SYNOD_TOKEN (0: deploy DevnetToken), SYNOD_MIN_NODE_STAKE (100e18),
/// SYNOD_MIN_VALIDATOR_STAKE (100e18), SYNOD_UNBONDING_DELAY (604800),
/// SYNOD_MIN_PHASE_DURATION (30), SYNOD_TREASURY (the deployer),
/// SYNOD_DEPLOYMENTS_FILE (deployments/<chainId>.json).
contract Deploy {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    /// @notice Forge recognises scripts by this flag.
    bool public IS_SCRIPT = true;

    function run() external returns (DeployLib.Deployment memory d) {
        vm.startBroadcast();
        // Inside a broadcast, msg.sender of this call frame's children is the broadcaster; tx.origin is it too.
        address deployer = tx.origin;
        DeployLib.Params memory p = DeployLib.defaults(deployer);
        p.token = vm.envOr("SYNOD_TOKEN", address(0));
        p.minNodeStake = vm.envOr("SYNOD_MIN_NODE_STAKE", p.minNodeStake);
        p.minValidatorStake = vm.envOr("SYNOD_MIN_VALIDATOR_STAKE", p.minValidatorStake);
        p.unbondingDelay = vm.envOr("SYNOD_UNBONDING_DELAY", p.unbondingDelay);
        p.minPhaseDuration = vm.envOr("SYNOD_MIN_PHASE_DURATION", p.minPhaseDuration);
        p.treasury = vm.envOr("SYNOD_TREASURY", deployer);
        uint256 deployBlock = block.number;
        d = DeployLib.deploy(p);
        vm.stopBroadcast();

        _write(d, p, deployer, deployBlock);
    }

    function _write(
        DeployLib.Deployment memory d,
        DeployLib.Params memory p,
        address deployer,
        uint256 deployBlock
    ) internal {
        string memory tokenJson = vm.serializeAddress("token", "address", address(d.token));
        tokenJson = vm.serializeString("token", "artifact", "out/DevnetToken.sol/DevnetToken.json");
        string memory registryJson = vm.serializeAddress("registry", "address", address(d.registry));
        registryJson = vm.serializeString("registry", "artifact", "out/StakeRegistry.sol/StakeRegistry.json");
        string memory marketJson = vm.serializeAddress("market", "address", address(d.market));
        marketJson = vm.serializeString("market", "artifact", "out/TaskMarket.sol/TaskMarket.json");

        vm.serializeString("contracts", "DevnetToken", tokenJson);
        vm.serializeString("contracts", "StakeRegistry", registryJson);
        string memory contractsJson = vm.serializeString("contracts", "TaskMarket", marketJson);

        vm.serializeAddress("params", "token", address(d.token));
        vm.serializeUint("params", "deployedDevnetToken", d.devnetToken ? 1 : 0);
        vm.serializeUint("params", "minNodeStake", p.minNodeStake);
        vm.serializeUint("params", "minValidatorStake", p.minValidatorStake);
        vm.serializeUint("params", "unbondingDelay", p.unbondingDelay);
        vm.serializeUint("params", "minPhaseDuration", p.minPhaseDuration);
        string memory paramsJson = vm.serializeAddress("params", "treasury", p.treasury);

        vm.serializeUint("root", "chainId", block.chainid);
        vm.serializeUint("root", "deployBlock", deployBlock);
        vm.serializeAddress("root", "deployer", deployer);
        vm.serializeString("root", "contracts", contractsJson);
        string memory json = vm.serializeString("root", "params", paramsJson);

        string memory path = vm.envOr(
            "SYNOD_DEPLOYMENTS_FILE", string.concat("deployments/", vm.toString(block.chainid), ".json")
        );
        vm.writeJson(json, path);
    }
}
