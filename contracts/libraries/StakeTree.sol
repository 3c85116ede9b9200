// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title StakeTree
/// @notice A Fenwick (binary indexed) tree of validator weights over 1-based indices `1..size`, used for
/// the stake-weighted committee draw: `find(r)` returns the index whose cumulative weight range contains
/// `r` in O(log size) reads. `size` only grows (freed indices are reused by the caller) and is bounded by
/// the caller (StakeRegistry: 1024), so every loop here runs at most 11 times.
library StakeTree {
    struct Tree {
        /// @dev nodes[i] = sum of weights of indices (i - lowbit(i), i].
        mapping(uint256 => uint256) nodes;
        /// @dev size and total share one slot (one read per draw).
        uint16 size;
        uint240 total;
    }

    /// @notice Prefix sum of weights of indices 1..i.
    function prefix(Tree storage tree, uint256 i) internal view returns (uint256 sum) {
        while (i > 0) {
            sum += tree.nodes[i];
            i &= i - 1;
        }
    }

    /// @notice Append index `size + 1` with `weight`; returns the new index.
    function push(Tree storage tree, uint256 weight) internal returns (uint256 index) {
        index = tree.size + 1;
        uint256 low = index & (~index + 1);
        // nodes[index] covers (index - low, index]: the weights already there plus the new one.
        tree.nodes[index] = weight + prefix(tree, index - 1) - prefix(tree, index - low);
        tree.size = uint16(index);
        tree.total += uint240(weight);
    }

    /// @notice Add `delta` to the weight of an existing `index`.
    function add(Tree storage tree, uint256 index, uint256 delta) internal {
        uint256 size = tree.size;
        tree.total += uint240(delta);
        while (index <= size) {
            tree.nodes[index] += delta;
            index += index & (~index + 1);
        }
    }

    /// @notice Subtract `delta` from the weight of an existing `index` (must not underflow it).
    function sub(Tree storage tree, uint256 index, uint256 delta) internal {
        uint256 size = tree.size;
        tree.total -= uint240(delta);
        while (index <= size) {
            tree.nodes[index] -= delta;
            index += index & (~index + 1);
        }
    }

    /// @notice The smallest index whose prefix sum exceeds `r` (requires r < total), and the prefix sum of the
    /// indices before it (where the index's weight range starts).
    function find(Tree storage tree, uint256 r) internal view returns (uint256 index, uint256 start) {
        uint256 size = tree.size;
        uint256 pos = 0;
        uint256 step = 1;
        while (step <= size >> 1) {
            step <<= 1;
        }
        uint256 rest = r;
        for (; step > 0; step >>= 1) {
            uint256 next = pos + step;
            if (next <= size) {
                uint256 w = tree.nodes[next];
                if (w <= rest) {
                    pos = next;
                    rest -= w;
                }
            }
        }
        return (pos + 1, r - rest);
    }
}
