//! The pure model: state, actions, the step function, invariants and the
//! wait-for graph. See the crate documentation for the big picture.

pub mod action;
pub mod bounded;
pub mod encode;
pub mod invariants;
pub mod state;
pub mod step;
pub mod waitfor;

pub use action::{Action, Event, LoopExit};
pub use invariants::Violation;
pub use state::{Current, Item, ItemId, Origin, Pc, Pwq, Slot, State, Wait, Worker, WorkerId};
pub use step::{enabled_actions, step, step_events, try_step, NotEnabled};
pub use waitfor::{find_cycle, Cycle, Via};
