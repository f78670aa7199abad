//! The month archive of the cluster tests: thirty days at 20 Hz on the
//! sample stations, mostly without data.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tmatch::epoch::{self, NS_PER_S};
use tmatch::synth::{Occurrence, Spec, Window};

/// Thirty days, 2023-12-31 to 2024-01-29, at 20 Hz on the three sample
/// stations, with data in the two hours around every other midnight (one
/// hour in each day) from 2024-01-01 on: the three sample sources occur
/// five times in each stretch, one of them three seconds before midnight
/// so that its waves cross it.
pub fn spec() -> Spec {
    let first = epoch::parse_time("2024-01-01T00:00:00Z").expect("valid time");
    let mut rng = ChaCha8Rng::seed_from_u64(202401);
    let mut windows = Vec::new();
    let mut events = Vec::new();
    for d in 0..15 {
        let midnight = first + 2 * d * epoch::NS_PER_DAY;
        windows.push(Window {
            start: midnight - 3600 * NS_PER_S,
            seconds: 7200.0,
        });
        let at = |s: f64| midnight + (s * 1e9) as i64;
        events.push(Occurrence {
            source: (d % 3) as usize,
            origin: at(-3.0),
            scale: 1.0,
        });
        for (k, lo) in [-3500.0, -1800.0, 100.0, 1800.0].into_iter().enumerate() {
            let t = lo + rng.gen_range(0.0..1500.0);
            events.push(Occurrence {
                source: ((d + 1 + k as i64) % 3) as usize,
                origin: at(t),
                scale: rng.gen_range(0.4..1.2),
            });
        }
    }
    Spec {
        windows,
        rate: 20.0,
        seed: 202401,
        events,
        gaps: Vec::new(),
        ..Spec::samples()
    }
}
