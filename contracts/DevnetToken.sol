// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title DevnetToken
/// @notice A plain ERC-20 for local devnets and tests that ANYONE may mint. Never deploy it where the
/// token is meant to have value: on a real chain point SYNOD_TOKEN at an existing ERC-20 instead.
contract DevnetToken is ERC20 {
    constructor() ERC20("Synod Devnet Token", "SYNDEV") {}

    /// @notice Mint `amount` tokens to `to` (unrestricted: devnets only).
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }
}
