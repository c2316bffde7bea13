//! Domain types shared by several processing modules and by the ports, so that they sit below both
//! (see docs/architecture.md). Each type keeps a re-export at its old path.

pub mod alerts;
pub mod bucket_view;
pub mod limits;
pub mod stats;
