// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title EventSpammer
/// @notice Emits many ERC-20 `Transfer` events per transaction, to pre-fill a chain for the watcher's tests and
/// bench (`scripts/bench_watcher.py`). Not a token: nothing is moved.
contract EventSpammer {
    /// @notice Same signature as ERC-20's, so the DevnetToken ABI decodes it.
    event Transfer(address indexed from, address indexed to, uint256 value);

    /// @notice Emit `count` Transfers from this contract to `to` with values `firstValue`, `firstValue + 1`, ...
    function spam(address to, uint256 firstValue, uint256 count) external {
        for (uint256 i = 0; i < count; ++i) {
            emit Transfer(address(this), to, firstValue + i);
        }
    }
}
