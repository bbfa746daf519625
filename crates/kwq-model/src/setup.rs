//! What is being checked: a code version, a scenario, a step granularity, an
//! allocator policy and the scenario's size.
//!
//! A [`Setup`] is everything the initial state and the transition relation
//! depend on. It is `Copy`, lives inside every [`State`](crate::State), and is
//! encoded in full at the front of every replay string, so a replay string is
//! self-contained.

use std::fmt;
use std::str::FromStr;

/// The kernel (or kwq) code being modelled.
///
/// Three switches distinguish the versions: which *kernel function pointer*
/// every Btrfs item carries (one generic helper or one helper per work type),
/// when a worker frees *its own* item (right after that item's ordered phase,
/// or only after leaving `run_ordered_work`), and how the busy table
/// identifies a running item (by address + function, or by item).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Version {
    /// v3.15/v3.16: every Btrfs item runs the single `normal_work_helper`;
    /// `run_ordered_work` frees each item, the worker's own included, right
    /// after its ordered phase.
    V3_16,
    /// 2014 (9e0af2376434) to v5.4: one `btrfs_<type>_helper` per work type;
    /// early self-free as before.
    V4,
    /// v5.5 fix c495dcd6fbe1 as backported to 5.4.y stable: unique helpers
    /// kept, the worker's own item is freed only after the ordered loop.
    V5_5,
    /// Mainline v5.5+: deferred self-free and the single `btrfs_work_helper`
    /// (a0cac0ec961f removed the unique helpers).
    V5_5Generic,
    /// Today's code (the `v6` label, whatever the tag): `fs/btrfs/async-thread.c`
    /// of a current tree (see [`V6_SOURCE`]). Deferred self-free, one
    /// `btrfs_work_helper`, the busy table still keyed by (address,
    /// function). In the model it behaves as [`Version::V5_5Generic`]: what
    /// changed since v5.5 (barriers around DONE, `ordered_free` folded into
    /// `ordered_func(work, true)`, no high-priority sub-queue, affinity-scoped
    /// unbound pools) does not change a step of the model.
    V6,
    /// The candidate fix on top of `v6`: an item is freed by whichever of two
    /// events comes last, its ordered phase completing or its own worker
    /// leaving the helper (a two-reference count), so no item is freed while
    /// the worker that executes it can still block.
    V6Fix,
    /// An alternative that does not work: like `v6`, but every worker defers
    /// the free of *every* item whose ordered phase it ran until it leaves
    /// `run_ordered_work` (not only its own). Kept to show that the free must
    /// wait for the item's *own* worker, not for the freeing one.
    V6DeferAll,
    /// kwq: the busy table identifies a running item by the item itself, not
    /// by its address, so a new allocation can never match a running worker.
    /// Modelled with the *pre-fix* Btrfs logic (early self-free, one generic
    /// helper) to show that identity alone removes the hazard.
    Kwq,
}

/// Where the `v6` rows come from: the tree, commit and file of the Btrfs
/// helper that [`Version::V6`] models, and of the workqueue core it runs on.
pub const V6_SOURCE: [(&str, &str, &str); 2] = [
    (
        "CachyOS/linux",
        "9366216c12765d13c7ebec185a544ddbb0bf3191",
        "fs/btrfs/async-thread.c",
    ),
    (
        "intel-lab-lkp/linux",
        "00d841f56b0dcd16419a7a33c42d9c350de5f344",
        "kernel/workqueue.c",
    ),
];

impl Version {
    /// Every version, in matrix order.
    pub const ALL: [Version; 8] = [
        Version::V3_16,
        Version::V4,
        Version::V5_5,
        Version::V5_5Generic,
        Version::V6,
        Version::V6Fix,
        Version::V6DeferAll,
        Version::Kwq,
    ];

    /// Does `run_ordered_work` defer freeing the worker's own item until the
    /// loop ends (`free_self`, c495dcd6fbe1)?
    #[must_use]
    pub fn deferred_self_free(self) -> bool {
        matches!(
            self,
            Version::V5_5
                | Version::V5_5Generic
                | Version::V6
                | Version::V6Fix
                | Version::V6DeferAll
        )
    }

    /// Is an item freed only once both its ordered phase completed and its
    /// own worker left the helper (the candidate fix, [`Version::V6Fix`])?
    #[must_use]
    pub fn freed_by_last_reference(self) -> bool {
        matches!(self, Version::V6Fix)
    }

    /// Does a worker defer the free of every item whose ordered phase it ran
    /// until it leaves `run_ordered_work` ([`Version::V6DeferAll`])?
    #[must_use]
    pub fn defers_every_free(self) -> bool {
        matches!(self, Version::V6DeferAll)
    }

    /// Does the busy table compare item identity instead of (address, function)?
    #[must_use]
    pub fn identity_by_item(self) -> bool {
        matches!(self, Version::Kwq)
    }

    /// The kernel function pointer stored in a Btrfs item's `work_struct`.
    #[must_use]
    pub fn func_for(self, kind: WorkType) -> FuncPtr {
        match self {
            Version::V3_16 => FuncPtr::NormalWorkHelper,
            Version::V4 | Version::V5_5 => match kind {
                WorkType::Delalloc => FuncPtr::DelallocHelper,
                WorkType::EndioMeta => FuncPtr::EndioMetaHelper,
            },
            Version::V5_5Generic | Version::V6 | Version::V6Fix | Version::V6DeferAll => {
                FuncPtr::BtrfsWorkHelper
            }
            Version::Kwq => FuncPtr::KwqWork,
        }
    }

    /// Short name used on the command line and in replay strings.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V3_16 => "v3.16",
            Version::V4 => "v4",
            Version::V5_5 => "v5.5",
            Version::V5_5Generic => "v5.5-generic",
            Version::V6 => "v6",
            Version::V6Fix => "v6-fix",
            Version::V6DeferAll => "v6-defer-all",
            Version::Kwq => "kwq",
        }
    }
}

/// The Btrfs work types that appear in the scenarios.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WorkType {
    /// `async_cow` compression items on `btrfs-delalloc`.
    Delalloc,
    /// Metadata read completion (`end_workqueue_fn`) on `btrfs-endio-meta`.
    EndioMeta,
}

/// A kernel work function pointer (`work_struct::func`), the second half of
/// the busy-table key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum FuncPtr {
    /// v3.15/3.16 `normal_work_helper`, shared by every Btrfs item.
    #[default]
    NormalWorkHelper,
    /// 2014–v5.4 `btrfs_delalloc_helper`.
    DelallocHelper,
    /// 2014–v5.4 `btrfs_endio_meta_helper`.
    EndioMetaHelper,
    /// v5.5+ `btrfs_work_helper`, shared by every Btrfs item.
    BtrfsWorkHelper,
    /// kwq's work function (irrelevant to the busy check, which uses identity).
    KwqWork,
}

impl FuncPtr {
    /// The C name, as a trace prints it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            FuncPtr::NormalWorkHelper => "normal_work_helper",
            FuncPtr::DelallocHelper => "btrfs_delalloc_helper",
            FuncPtr::EndioMetaHelper => "btrfs_endio_meta_helper",
            FuncPtr::BtrfsWorkHelper => "btrfs_work_helper",
            FuncPtr::KwqWork => "kwq work fn",
        }
    }
}

/// Which interleaving of docs/kernel.md §4 is set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scenario {
    /// §4.2: one filesystem; delalloc items whose ordered phase may read the
    /// free-space cache, allocating an end-io item at bio preparation time
    /// and waiting until that item has run on `btrfs-endio-meta`.
    Y2014,
    /// §4.3: a top filesystem on a loop device backed by a file of a bottom
    /// filesystem; a top ordered phase may wait until the bottom filesystem
    /// has written the data back, which takes one bottom delalloc item.
    Y2019,
    /// §4.5 pool starvation: the 2019 stacking on a *bound, concurrency-
    /// managed* pool (one running worker at a time) that cannot create a
    /// worker beyond `max_workers` (kthread creation stuck in memory
    /// reclaim). No rescuer.
    Starve,
    /// [`Scenario::Starve`] with the mayday path: each of the two workqueues
    /// (`WQ_MEM_RECLAIM`, as every Btrfs workqueue) has a rescuer that may
    /// run that workqueue's items from the worklist while the pool needs a
    /// worker it has not got.
    StarveRescuer,
}

impl Scenario {
    /// Both scenarios, in matrix order.
    pub const ALL: [Scenario; 4] = [
        Scenario::Y2014,
        Scenario::Y2019,
        Scenario::Starve,
        Scenario::StarveRescuer,
    ];

    /// Are two filesystems stacked (top items wait for bottom items)?
    #[must_use]
    pub fn stacked(self) -> bool {
        !matches!(self, Scenario::Y2014)
    }

    /// Is the pool bound and concurrency-managed, with worker creation that
    /// can fail (the §4.5 scenarios)?
    #[must_use]
    pub fn managed_pool(self) -> bool {
        matches!(self, Scenario::Starve | Scenario::StarveRescuer)
    }

    /// Do the workqueues have rescuers?
    #[must_use]
    pub fn rescuers(self) -> bool {
        matches!(self, Scenario::StarveRescuer)
    }

    /// Short name used on the command line and in replay strings.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::Y2014 => "2014",
            Scenario::Y2019 => "2019",
            Scenario::Starve => "starve",
            Scenario::StarveRescuer => "starve-rescuer",
        }
    }

    /// Name of kernel workqueue `wq` (0 or 1) in this scenario.
    #[must_use]
    pub fn wq_name(self, wq: u8) -> &'static str {
        match (self, wq) {
            (Scenario::Y2014, 0) => "btrfs-delalloc",
            (Scenario::Y2014, _) => "btrfs-endio-meta",
            (_, 0) => "btrfs-delalloc (top)",
            (_, _) => "btrfs-delalloc (bottom)",
        }
    }
}

/// How finely the Btrfs helper is cut into atomic steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Granularity {
    /// §4.1 steps. Setting DONE is glued to the first `list_lock` section of
    /// `run_ordered_work`, and freeing an item is glued to the next
    /// iteration's `list_lock` section.
    Coarse,
    /// Residual window R1 (§2.7): setting DONE and the first `list_lock`
    /// acquisition are separate steps; later iterations as in `Coarse`.
    Fine,
    /// Every `list_lock` acquisition of the ordered loop is its own step
    /// (also splits "free the previous head" from "take the lock again").
    FineAll,
}

impl Granularity {
    /// Is DONE set in a separate step from the first lock acquisition?
    #[must_use]
    pub fn split_first_lock(self) -> bool {
        !matches!(self, Granularity::Coarse)
    }

    /// Is every later iteration's lock acquisition a separate step?
    #[must_use]
    pub fn split_every_lock(self) -> bool {
        matches!(self, Granularity::FineAll)
    }

    /// Short name used on the command line and in replay strings.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Granularity::Coarse => "coarse",
            Granularity::Fine => "fine",
            Granularity::FineAll => "fine-all",
        }
    }
}

/// Which freed slot a new allocation gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AllocPolicy {
    /// The most recently freed slot, else a fresh one: a SLUB per-CPU
    /// freelist with every allocation on one CPU (modelling assumption).
    Lifo,
    /// Any free slot or a fresh one, chosen nondeterministically.
    Any,
}

impl AllocPolicy {
    /// Short name used on the command line and in replay strings.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            AllocPolicy::Lifo => "lifo",
            AllocPolicy::Any => "any",
        }
    }
}

macro_rules! str_enum {
    ($t:ty, $what:literal, $all:expr) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $t {
            type Err = ParseSetupError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $all.into_iter()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| ParseSetupError {
                        what: $what,
                        got: s.to_string(),
                        expected: $all
                            .iter()
                            .map(|v| v.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    })
            }
        }
    };
}

str_enum!(Version, "version", Version::ALL);
str_enum!(Scenario, "scenario", Scenario::ALL);
str_enum!(
    Granularity,
    "granularity",
    [Granularity::Coarse, Granularity::Fine, Granularity::FineAll]
);
str_enum!(
    AllocPolicy,
    "allocator",
    [AllocPolicy::Lifo, AllocPolicy::Any]
);

/// An unknown version, scenario, granularity or allocator name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseSetupError {
    what: &'static str,
    got: String,
    expected: String,
}

impl fmt::Display for ParseSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown {} `{}` (expected one of: {})",
            self.what, self.got, self.expected
        )
    }
}

impl std::error::Error for ParseSetupError {}

/// Largest number of upper-layer items a setup may ask for (item names run out).
pub const MAX_ITEMS: u8 = 8;
/// Largest worker cap a setup may ask for.
pub const MAX_WORKERS: u8 = 8;

/// Everything the transition relation depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Setup {
    /// Code version.
    pub version: Version,
    /// Scenario.
    pub scenario: Scenario,
    /// Step granularity.
    pub granularity: Granularity,
    /// Allocator policy.
    pub alloc: AllocPolicy,
    /// Number of delalloc items the (top) filesystem's writeback queues.
    pub items: u8,
    /// Worker cap of the pool (the kernel's cap is memory; the model needs one).
    pub max_workers: u8,
    /// `max_active` of every workqueue's pwq.
    pub max_active: u8,
    /// At most this many ordered phases wait for I/O in one run (each wait
    /// brings one more item: a bottom delalloc item or an end-io item).
    pub waits: u8,
}

impl Setup {
    /// A setup with the given version and scenario and the default
    /// granularity, allocator and sizes of [`Config::default`](crate::Config).
    #[must_use]
    pub fn new(version: Version, scenario: Scenario) -> Setup {
        crate::Config::default().setup(version, scenario)
    }

    /// The same setup with another granularity.
    #[must_use]
    pub fn with_granularity(mut self, g: Granularity) -> Setup {
        self.granularity = g;
        self
    }

    /// The same setup with another allocator policy.
    #[must_use]
    pub fn with_alloc(mut self, a: AllocPolicy) -> Setup {
        self.alloc = a;
        self
    }

    /// The same setup with another number of upper-layer items.
    #[must_use]
    pub fn with_items(mut self, n: u8) -> Setup {
        self.items = n;
        self.waits = self.waits.min(n);
        self
    }

    /// The same setup with another bound on I/O waits.
    #[must_use]
    pub fn with_waits(mut self, n: u8) -> Setup {
        self.waits = n;
        self
    }

    /// The same setup with another worker cap.
    #[must_use]
    pub fn with_workers(mut self, n: u8) -> Setup {
        self.max_workers = n;
        self
    }

    /// Header of a replay string: `v4:2019:coarse:lifo:i2:w4:a4`.
    #[must_use]
    pub fn encode(&self) -> String {
        format!(
            "{}:{}:{}:{}:i{}:w{}:a{}:o{}",
            self.version,
            self.scenario,
            self.granularity,
            self.alloc,
            self.items,
            self.max_workers,
            self.max_active,
            self.waits
        )
    }

    /// Checks the sizes are within what the model supports.
    ///
    /// # Errors
    ///
    /// A [`ParseSetupError`] naming the first size outside the supported range.
    pub fn validate(&self) -> Result<(), ParseSetupError> {
        let bad = |what: &'static str, got: u8, expected: String| ParseSetupError {
            what,
            got: got.to_string(),
            expected,
        };
        if !(1..=MAX_ITEMS).contains(&self.items) {
            return Err(bad("item count", self.items, format!("1..={MAX_ITEMS}")));
        }
        if !(1..=MAX_WORKERS).contains(&self.max_workers) {
            return Err(bad(
                "worker cap",
                self.max_workers,
                format!("1..={MAX_WORKERS}"),
            ));
        }
        if self.waits > self.items {
            return Err(bad("wait count", self.waits, format!("0..={}", self.items)));
        }
        if self.max_active == 0 {
            return Err(bad("max_active", 0, "1..=255".into()));
        }
        Ok(())
    }
}

impl fmt::Display for Setup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "version {} × scenario {} ({} steps, {} allocator, {} items, ≤{} I/O waits, ≤{} workers, max_active {})",
            self.version,
            self.scenario,
            self.granularity,
            self.alloc,
            self.items,
            self.waits,
            self.max_workers,
            self.max_active
        )
    }
}
