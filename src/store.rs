//! The all-time reader count of each post, and its reading heat map, on disk. One small JSON file,
//! replaced atomically (write a temp file, fsync it, rename it over the old
//! one, fsync the folder), so a crash at any moment leaves the old file or
//! the new one, never a torn one. Nothing about any reader is stored.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// All-time readers by post slug. A `BTreeMap` so the file is sorted and
/// diffs well.
pub type Totals = BTreeMap<String, u64>;

/// Reader-seconds spent at each block of each post (readers whose tab is
/// shown and who read; nothing per reader). By post slug, one number per
/// block.
pub type Heat = BTreeMap<String, Vec<f64>>;

const FILE: &str = "counts.json";

#[derive(Serialize, Deserialize)]
struct CountsFile {
    version: u32,
    totals: Totals,
    /// Added later: a file without it is a heat map of nothing yet.
    #[serde(default)]
    heat: Heat,
}

pub fn counts_path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// Reads the counts. A missing folder is created (if it cannot be, the
/// server starts from zero and keeps trying to save) and a missing file is a
/// fresh start; a file that cannot be parsed is moved aside as
/// `counts.json.corrupt-<unix time>` (never overwritten) with a warning. A
/// file that exists but cannot be read is an error: starting from zero would
/// overwrite it at the next save.
pub fn load_counts(dir: &Path) -> io::Result<Totals> {
    if let Err(error) = fs::create_dir_all(dir) {
        tracing::warn!(
            "cannot create the data folder {}: {error}; counting in memory and retrying every save",
            dir.display()
        );
        return Ok(Totals::new());
    }
    remove_stale_temp_files(dir);
    let path = counts_path(dir);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Totals::new()),
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("cannot read {}: {e}; check its permissions", path.display()),
            ))
        }
    };
    match serde_json::from_slice::<CountsFile>(&bytes) {
        Ok(file) => Ok(file.totals),
        Err(error) => {
            let stamp = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let aside = dir.join(format!("{FILE}.corrupt-{stamp}"));
            fs::rename(&path, &aside)?;
            tracing::warn!(
                "{} is not a valid counts file ({error}); kept it as {} and started the counts from zero",
                path.display(),
                aside.display()
            );
            Ok(Totals::new())
        }
    }
}

/// The heat map saved with the counts; nothing if there is none yet (or
/// the file is unreadable: `load_counts`, called first, says so).
pub fn load_heat(dir: &Path) -> Heat {
    fs::read(counts_path(dir))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<CountsFile>(&bytes).ok())
        .map(|file| file.heat)
        .unwrap_or_default()
        .into_iter()
        // Only sane numbers: a hand-edited file must not poison the sums.
        .map(|(slug, strip)| {
            let strip = strip
                .into_iter()
                .map(|s| if s.is_finite() && s > 0.0 { s } else { 0.0 })
                .collect();
            (slug, strip)
        })
        .collect()
}

/// How old a temp file must be to be litter where the file system cannot
/// lock files. A save takes milliseconds, so a temp file this old is one a
/// save cut short left, never another instance's save in progress.
const STALE: Duration = Duration::from_secs(600);

/// Removes temp files that saves cut short (kill -9, power loss) left
/// behind; they were never renamed, so they hold nothing the real file
/// needs. A save holds a lock on its temp file until it is renamed, and the
/// kernel drops the lock when the saver dies, so a temp file nobody holds is
/// litter whatever its age, while another instance's save in progress in a
/// shared folder (or a second container that is also pid 1) is left alone.
/// Where the file system cannot lock, age decides instead.
fn remove_stale_temp_files(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let is_temp = entry
            .file_name()
            .to_string_lossy()
            .starts_with(&format!(".{FILE}.tmp-"));
        if !is_temp {
            continue;
        }
        let litter = match File::open(entry.path()).map(|f| f.try_lock()) {
            Ok(Ok(())) => true,
            Ok(Err(fs::TryLockError::WouldBlock)) => false,
            // No locks here (or the file went away): fall back to its age.
            Ok(Err(fs::TryLockError::Error(_))) | Err(_) => entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|modified| now.duration_since(modified).ok())
                .is_some_and(|age| age >= STALE),
        };
        if litter {
            let _ = fs::remove_file(entry.path()); // Best effort: it is only litter.
        }
    }
}

/// Replaces the counts file (the totals and the heat map) atomically.
pub fn save_counts(dir: &Path, totals: &Totals, heat: &Heat) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    // Tenths of a reader-second are plenty, and keep the file short.
    let heat: Heat = heat
        .iter()
        .map(|(slug, strip)| {
            let strip = strip.iter().map(|s| (s * 10.0).round() / 10.0).collect();
            (slug.clone(), strip)
        })
        .collect();
    let bytes = serde_json::to_vec_pretty(&CountsFile {
        version: 1,
        totals: totals.clone(),
        heat,
    })?;
    let path = counts_path(dir);
    // Unique per save, not per process: two instances sharing the folder
    // (or two containers that are both pid 1) never write the same file.
    let temp = dir.join(format!(
        ".{FILE}.tmp-{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let result = (|| {
        let mut file = File::create(&temp)?;
        // Held until the file is closed after the rename: it tells a
        // starting instance this temp file is a save in progress, not
        // litter. Best effort; without locks, age tells instead.
        let _ = file.try_lock();
        file.write_all(&bytes)?;
        file.sync_all()?;
        fs::rename(&temp, &path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        // A half-written temp file is useless; the real file is untouched.
        let _ = fs::remove_file(&temp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(label: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("ghostread-store-{label}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn counts_survive_a_save_and_load() {
        let dir = temp_dir("roundtrip");
        assert!(
            load_counts(&dir).expect("fresh").is_empty(),
            "a missing folder is a fresh start"
        );
        let totals = Totals::from([("a-post".to_string(), 1835), ("b".to_string(), 2)]);
        save_counts(&dir, &totals, &Heat::new()).expect("save");
        assert_eq!(load_counts(&dir).expect("load"), totals);
        let heat = Heat::from([("a-post".to_string(), vec![0.0, 12.34, 5.0])]);
        save_counts(&dir, &totals, &heat).expect("save with heat");
        assert_eq!(load_counts(&dir).expect("load"), totals);
        assert_eq!(
            load_heat(&dir)["a-post"],
            [0.0, 12.3, 5.0],
            "kept to a tenth"
        );
        let names: Vec<_> = fs::read_dir(&dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, [FILE], "no temp file is left behind");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_corrupt_file_is_kept_aside_not_overwritten() {
        let dir = temp_dir("corrupt");
        fs::create_dir_all(&dir).expect("mkdir");
        fs::write(counts_path(&dir), "{ not json").expect("write");
        assert!(load_counts(&dir).expect("load").is_empty());
        let aside: Vec<_> = fs::read_dir(&dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("counts.json.corrupt-"))
            .collect();
        assert_eq!(aside.len(), 1);
        assert_eq!(
            fs::read_to_string(dir.join(&aside[0])).expect("read"),
            "{ not json"
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn start_up_removes_temp_files_nobody_is_saving_into_but_not_a_save_in_progress() {
        let dir = temp_dir("temps");
        fs::create_dir_all(&dir).expect("make the folder");
        let saving = dir.join(format!(".{FILE}.tmp-1-00000000000000aa"));
        let cut_short = dir.join(format!(".{FILE}.tmp-1-00000000000000bb"));
        fs::write(&saving, b"another instance saving now").expect("write");
        fs::write(&cut_short, b"its saver was killed a moment ago").expect("write");
        // Another instance holds the lock on its temp file while it saves.
        let other_save = File::open(&saving).expect("open");
        other_save.lock().expect("lock as a save does");
        load_counts(&dir).expect("load");
        assert!(
            saving.exists(),
            "another instance's save in progress is left alone"
        );
        assert!(
            !cut_short.exists(),
            "litter from a save cut short is removed, however young"
        );
        drop(other_save);
        load_counts(&dir).expect("load again");
        assert!(!saving.exists(), "once nobody holds it, it is litter");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn two_saves_into_one_folder_never_share_a_temp_file() {
        let dir = temp_dir("shared");
        let totals: Totals = [("p".to_string(), 3)].into_iter().collect();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (dir, totals) = (dir.clone(), totals.clone());
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        save_counts(&dir, &totals, &Heat::new()).expect("every save succeeds");
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("no panic");
        }
        assert_eq!(load_counts(&dir).expect("load").get("p"), Some(&3));
        let _ = fs::remove_dir_all(&dir);
    }
}
