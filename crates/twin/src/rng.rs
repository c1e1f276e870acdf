//! Independent, reproducible random streams. Each source of randomness (demand, each machine's
//! failures, sensors and quality) has its own stream, so that a policy change does not reshuffle
//! demand or failures: policies are compared on common random numbers.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub(crate) type Stream = ChaCha8Rng;

/// SplitMix64 finaliser: spreads (seed, stream) pairs over the seed space.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Stream kinds; the numbers are part of the seed contract and must not change.
#[derive(Debug, Clone, Copy)]
pub(crate) enum StreamKind {
    Demand = 1,
    Failure = 2,
    Sensor = 3,
    Quality = 4,
    Repair = 5,
    Supply = 6,
    /// The order book before day 0 (its own stream: asking for history changes no run).
    History = 7,
    /// The maintenance records before day 0.
    MaintenanceHistory = 8,
}

pub(crate) fn stream(seed: u64, kind: StreamKind, index: u64) -> Stream {
    let key = mix(mix(seed) ^ mix((kind as u64) << 32 | index));
    ChaCha8Rng::seed_from_u64(key)
}
