//! The manager keeping itself whole: saves retried until one succeeds, and
//! a manager that dies noticed by everyone who asks.

use super::*;

#[tokio::test(start_paused = true)]
async fn a_failed_save_is_retried_until_one_succeeds() {
    let folder = DataDir::new("save");
    // A file where the data folder should be: every save fails.
    let data_dir = folder.0.join("data");
    std::fs::write(&data_dir, b"not a folder").expect("a file");
    let metrics = Arc::new(Metrics::default());
    let ghosts = Ghosts::spawn(settings(data_dir.clone()), Totals::new(), metrics.clone());
    let _reader = ghosts.join(request("p", None)).await.expect("joined");

    // No reader arrives after the first, yet the manager keeps trying.
    while metrics.counts_save_errors.get() < 3 {
        tokio::time::sleep(SAVE_INTERVAL).await;
    }
    assert_eq!(metrics.counts_saved.get(), 0);

    std::fs::remove_file(&data_dir).expect("removed");
    std::fs::create_dir(&data_dir).expect("a folder");
    while metrics.counts_saved.get() == 0 {
        tokio::time::sleep(SAVE_INTERVAL).await;
    }
    let saved = crate::store::load_counts(&data_dir).expect("readable");
    assert_eq!(saved.get("p"), Some(&1));
}

#[tokio::test(start_paused = true)]
async fn a_manager_that_dies_is_noticed_and_joins_are_refused() {
    let actor = start("crash");
    let _reader = join(&actor, "p").await;
    assert!(actor.ghosts.is_alive());
    actor.ghosts.crash().await;
    actor.ghosts.stopped().await;
    assert!(!actor.ghosts.is_alive());
    let refused = actor.ghosts.join(request("p", None)).await.err();
    assert_eq!(refused, Some(crate::ghosts::commands::JoinRefused::Stopped));
}
