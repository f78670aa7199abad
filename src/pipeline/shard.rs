//! Splitting the requested days among the tasks of a Slurm array (or any
//! set of independent jobs): shard `I` of `N` takes every `N`-th day from
//! the `I`-th on, so each shard gets the same mix of seasons and years and
//! the split depends on nothing but the days and `N`.

use std::fmt;
use std::str::FromStr;

use crate::epoch::Day;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 0-based.
    pub index: usize,
    pub count: usize,
}

impl FromStr for Shard {
    type Err = String;
    /// `I/N` with `0 ≤ I < N`.
    fn from_str(s: &str) -> Result<Shard, String> {
        let bad = || format!("'{s}': expected I/N with 0 <= I < N, e.g. 3/16");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = i.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// The shard of a Slurm array task, from `SLURM_ARRAY_TASK_ID`,
    /// `SLURM_ARRAY_TASK_MIN` and `SLURM_ARRAY_TASK_COUNT` as `var` reads
    /// them; `None` outside an array job. Task ids need not start at 0
    /// (`--array=1-16`); an array with steps or gaps (`--array=0-30:2`) has
    /// ids that do not map onto shards and is an error.
    pub fn from_slurm(var: impl Fn(&str) -> Option<String>) -> Result<Option<Shard>, String> {
        let Some(id) = var("SLURM_ARRAY_TASK_ID") else {
            return Ok(None);
        };
        let num = |name: &str| -> Result<usize, String> {
            let v = var(name).ok_or_else(|| {
                format!("SLURM_ARRAY_TASK_ID is set but {name} is not; give --shard I/N")
            })?;
            v.trim()
                .parse()
                .map_err(|_| format!("{name}='{v}' is not a number; give --shard I/N"))
        };
        let id: usize = id
            .trim()
            .parse()
            .map_err(|_| format!("SLURM_ARRAY_TASK_ID='{id}' is not a number"))?;
        let (min, count) = (num("SLURM_ARRAY_TASK_MIN")?, num("SLURM_ARRAY_TASK_COUNT")?);
        if id < min || id - min >= count {
            return Err(format!(
                "Slurm array task {id} is outside {min}..{} (SLURM_ARRAY_TASK_MIN, \
                 SLURM_ARRAY_TASK_COUNT): use a contiguous --array=A-B, or give --shard I/N",
                min + count.saturating_sub(1)
            ));
        }
        Ok(Some(Shard {
            index: id - min,
            count,
        }))
    }

    /// This shard's days, in the order given.
    pub fn select(&self, days: &[Day]) -> Vec<Day> {
        days.iter()
            .enumerate()
            .filter(|(i, _)| i % self.count == self.index)
            .map(|(_, &d)| d)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn shards_partition_the_days() {
        let days: Vec<Day> = (100..137).collect();
        let mut all: Vec<Day> = (0..5)
            .flat_map(|i| Shard { index: i, count: 5 }.select(&days))
            .collect();
        all.sort();
        assert_eq!(all, days);
        assert_eq!(Shard { index: 1, count: 5 }.select(&days)[..2], [101, 106]);
    }

    #[test]
    fn parse_and_slurm_defaults() {
        assert_eq!(
            "3/16".parse(),
            Ok(Shard {
                index: 3,
                count: 16
            })
        );
        for bad in ["16/16", "1/0", "a/2", "3", "-1/4"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        assert_eq!(Shard::from_slurm(env(&[])), Ok(None));
        let one_based = [
            ("SLURM_ARRAY_TASK_ID", "4"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "8"),
        ];
        assert_eq!(
            Shard::from_slurm(env(&one_based)),
            Ok(Some(Shard { index: 3, count: 8 }))
        );
        let stepped = [
            ("SLURM_ARRAY_TASK_ID", "30"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_COUNT", "16"),
        ];
        assert!(Shard::from_slurm(env(&stepped)).is_err());
        assert!(Shard::from_slurm(env(&one_based[..2])).is_err());
    }
}
