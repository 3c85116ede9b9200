// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Vm} from "./Vm.sol";

/// @title Test
/// @notice Minimal test base (no forge-std): the cheatcode handle, `bound`, named addresses, console logging,
/// the invariant-target getters forge reads, and per-transaction gas measurement.
abstract contract Test {
    /// @notice Forge runs `test*` / `invariant*` functions of contracts exposing this.
    bool public IS_TEST = true;

    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));
    address private constant _CONSOLE = 0x000000000000000000636F6e736F6c652e6c6f67;

    /// @dev Layout of forge-std's `StdInvariant.FuzzSelector`, which forge decodes.
    struct FuzzSelector {
        address addr;
        bytes4[] selectors;
    }

    address[] private _targetedContracts;
    address[] private _excludedSenders;
    address[] private _targetedSenders;
    FuzzSelector[] private _targetedSelectors;

    // ----------------------------------------------------------------- invariant targets (read by forge)

    function targetContracts() public view returns (address[] memory) {
        return _targetedContracts;
    }

    function targetSelectors() public view returns (FuzzSelector[] memory) {
        return _targetedSelectors;
    }

    function excludeSenders() public view returns (address[] memory) {
        return _excludedSenders;
    }

    function targetSenders() public view returns (address[] memory) {
        return _targetedSenders;
    }

    function targetContract(address target) internal {
        _targetedContracts.push(target);
    }

    function targetSelector(FuzzSelector memory selector) internal {
        _targetedSelectors.push(selector);
    }

    function excludeSender(address sender) internal {
        _excludedSenders.push(sender);
    }

    function targetSender(address sender) internal {
        _targetedSenders.push(sender);
    }

    // ----------------------------------------------------------------- helpers

    /// @notice Map `x` into [min, max] (inclusive) without discarding fuzz runs.
    function bound(uint256 x, uint256 min, uint256 max) internal pure returns (uint256) {
        require(min <= max, "bound: min > max");
        if (x >= min && x <= max) return x;
        uint256 span = max - min;
        if (span == type(uint256).max) return x;
        return min + (x % (span + 1));
    }

    /// @notice A deterministic address for `name` (labelled in traces).
    function makeAddr(string memory name) internal returns (address a) {
        a = vm.addr(uint256(keccak256(bytes(name))));
        vm.label(a, name);
    }

    /// @notice console.log(string, uint256) through forge's console address.
    function log(string memory label, uint256 value) internal view {
        (bool ok,) = _CONSOLE.staticcall(abi.encodeWithSignature("log(string,uint256)", label, value));
        ok;
    }

    /// @notice Gas used by the transaction sending `data` to `target` from `sender`, as its receipt would
    /// show: forge runs with `isolate = true` (foundry.toml), so each top-level call of a test is executed as a
    /// transaction of its own (21,000 + calldata + execution with fresh warm/cold and original-value storage
    /// pricing - refund) and `vm.lastCallGas()` reports its total. Reverts with the callee's revert data.
    function measureTx(address sender, address target, bytes memory data) internal returns (uint256 gasUsed) {
        vm.prank(sender);
        (bool ok, bytes memory ret) = target.call(data);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(ret, 32), mload(ret))
            }
        }
        gasUsed = vm.lastCallGas().gasTotalUsed;
    }
}
