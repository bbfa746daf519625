//! Btrfs-style ordered work (issue 3; being written).
