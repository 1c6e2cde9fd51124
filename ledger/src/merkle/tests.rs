//! Known-answer tests against the RFC 6962 test data published with the
//! certificate-transparency implementations, plus exhaustive self-checks.

use super::*;
use crate::hash::leaf_hash;

const LEAVES: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];

/// MTH(D[n]) for n = 0..=8.
const ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

const INCLUSION: &[(u64, u64, &[&str])] = &[
    (0, 1, &[]),
    (
        0,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        &[
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        3,
        &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
    ),
    (
        1,
        5,
        &[
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
];

const CONSISTENCY: &[(u64, u64, &[&str])] = &[
    (1, 1, &[]),
    (
        1,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        &[
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
];

fn h(s: &str) -> Hash {
    hex::decode(s).unwrap().try_into().unwrap()
}

fn ct_tree(n: usize) -> MemoryTree {
    let mut t = MemoryTree::new();
    for l in &LEAVES[..n] {
        t.push(leaf_hash(&hex::decode(l).unwrap()));
    }
    t
}

fn tree(n: u64) -> MemoryTree {
    let mut t = MemoryTree::new();
    for i in 0..n {
        t.push(leaf_hash(format!("leaf-{i}").as_bytes()));
    }
    t
}

#[test]
fn roots_match_published_vectors() {
    for (n, want) in ROOTS.iter().enumerate() {
        let t = ct_tree(n);
        assert_eq!(hex::encode(t.root()), *want, "frontier root, size {n}");
        let full = ct_tree(8);
        assert_eq!(
            hex::encode(root(&full, n as u64).unwrap()),
            *want,
            "stored root, size {n}"
        );
    }
}

#[test]
fn inclusion_proofs_match_published_vectors() {
    let t = ct_tree(8);
    for (index, size, want) in INCLUSION {
        let got = inclusion_proof(&t, *index, *size).unwrap();
        let want: Vec<Hash> = want.iter().map(|s| h(s)).collect();
        assert_eq!(got, want, "PATH({index}, D[{size}])");
        let leaf = leaf_hash(&hex::decode(LEAVES[*index as usize]).unwrap());
        assert!(verify_inclusion(
            *index,
            *size,
            &leaf,
            &got,
            &h(ROOTS[*size as usize])
        ));
    }
}

#[test]
fn consistency_proofs_match_published_vectors() {
    let t = ct_tree(8);
    for (first, second, want) in CONSISTENCY {
        let got = consistency_proof(&t, *first, *second).unwrap();
        let want: Vec<Hash> = want.iter().map(|s| h(s)).collect();
        assert_eq!(got, want, "PROOF({first}, D[{second}])");
        assert!(verify_consistency(
            *first,
            &h(ROOTS[*first as usize]),
            *second,
            &h(ROOTS[*second as usize]),
            &got
        ));
    }
}

#[test]
fn every_inclusion_proof_up_to_70_verifies_and_tampering_fails() {
    let t = tree(70);
    for n in 1..=70u64 {
        let r = root(&t, n).unwrap();
        for i in 0..n {
            let leaf = t.node(0, i).unwrap();
            let p = inclusion_proof(&t, i, n).unwrap();
            assert!(verify_inclusion(i, n, &leaf, &p, &r), "n={n} i={i}");
            assert!(!verify_inclusion(i, n, &leaf_hash(b"x"), &p, &r));
            if n > 1 {
                assert!(!verify_inclusion((i + 1) % n, n, &leaf, &p, &r));
            }
            if let Some((_, short)) = p.split_last() {
                assert!(!verify_inclusion(i, n, &leaf, short, &r));
                let mut bad = p.clone();
                bad[0][0] ^= 1;
                assert!(!verify_inclusion(i, n, &leaf, &bad, &r));
            }
            let mut long = p.clone();
            long.push(r);
            assert!(!verify_inclusion(i, n, &leaf, &long, &r));
        }
        assert!(!verify_inclusion(n, n, &t.node(0, 0).unwrap(), &[], &r));
    }
}

#[test]
fn every_consistency_proof_up_to_70_verifies_and_tampering_fails() {
    let t = tree(70);
    for n in 1..=70u64 {
        let rn = root(&t, n).unwrap();
        for m in 0..=n {
            let rm = root(&t, m).unwrap();
            let p = consistency_proof(&t, m, n).unwrap();
            assert!(verify_consistency(m, &rm, n, &rn, &p), "m={m} n={n}");
            if m > 0 && m < n {
                let mut bad = p.clone();
                bad[0][1] ^= 1;
                assert!(!verify_consistency(m, &rm, n, &rn, &bad));
                assert!(!verify_consistency(m, &rn, n, &rn, &p) || rm == rn);
                if let Some((_, short)) = p.split_last() {
                    assert!(!verify_consistency(m, &rm, n, &rn, short));
                }
            }
        }
        assert!(!verify_consistency(n + 1, &rn, n, &rn, &[]));
    }
}

#[test]
fn frontier_roundtrip_and_root_at_every_size() {
    let t = tree(100);
    for n in 0..=100u64 {
        let f = Frontier::load(&t, n).unwrap();
        assert_eq!(f.root(), root(&t, n).unwrap());
        assert!(Frontier::from_parts(n, f.hashes().to_vec()).is_some());
    }
    assert!(Frontier::from_parts(3, vec![]).is_none());
}

#[test]
fn out_of_range_requests_are_errors_not_panics() {
    let t = tree(5);
    assert!(inclusion_proof(&t, 5, 5).is_err());
    assert!(consistency_proof(&t, 6, 5).is_err());
    assert!(root(&t, 9).is_err());
    assert!(subtree_hash(&t, 3, 3).is_err());
}
