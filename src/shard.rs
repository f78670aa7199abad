//! Splitting work among the tasks of a Slurm array (or any set of
//! independent jobs), along either axis: the requested days (`--shard`) or
//! the templates (`--template-shard`). Shard `I` of `N` takes every `N`-th
//! item from the `I`-th on, so each shard gets the same mix (of seasons and
//! years, of template sizes and regions) and the split depends on nothing
//! but the items and `N`.

use std::fmt;
use std::str::FromStr;

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

    /// Whether item `i` (0-based, of the full list) is in this shard.
    pub fn contains(&self, i: usize) -> bool {
        i % self.count == self.index
    }

    /// This shard's items, in the order given.
    pub fn select<T: Copy>(&self, items: &[T]) -> Vec<T> {
        items
            .iter()
            .enumerate()
            .filter(|&(i, _)| self.contains(i))
            .map(|(_, &x)| x)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::epoch::Day;

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
    fn template_shards_partition_the_indices_and_are_balanced() {
        for n in [0, 1, 2, 7, 50, 101] {
            let all: Vec<usize> = (0..n).collect();
            for count in 1..=6 {
                let shards: Vec<Shard> = (0..count).map(|index| Shard { index, count }).collect();
                let mut union: Vec<usize> = shards.iter().flat_map(|s| s.select(&all)).collect();
                let sizes: Vec<usize> = shards.iter().map(|s| s.select(&all).len()).collect();
                union.sort();
                assert_eq!(union, all, "{n} items, {count} shards");
                assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1);
                for i in all.iter().copied() {
                    let holders: Vec<&Shard> = shards.iter().filter(|s| s.contains(i)).collect();
                    assert_eq!(holders.len(), 1);
                    assert!(holders[0].select(&all).contains(&i));
                }
            }
        }
        let third = Shard { index: 2, count: 3 };
        assert_eq!(third.select(&(0..10).collect::<Vec<_>>()), [2, 5, 8]);
        assert_eq!(third.select(&["a", "b", "c", "d", "e", "f"]), ["c", "f"]);
        assert_eq!(Shard { index: 0, count: 1 }.select(&[4, 5]), [4, 5]);
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
