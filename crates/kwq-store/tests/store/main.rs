//! Integration tests of kwq-store: the API, the model-based test, crash
//! safety, corruption and stacking. One binary (modules below).

mod api;
mod common;
mod concurrent;
mod crash;
mod kill;
mod model;
mod stack;
