//! vigil-ledger: the hash-chained Merkle audit ledger (work in progress).
