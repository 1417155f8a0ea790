//! tierstream's compiled scorer core: the per-event work of `services/scorer/core` (decode,
//! state, features, the tier decision through the ruleset's memo), called once per batch.
//! The Python core stays the reference; tests/unit/test_native*.py hold the two equal on
//! generated input.

use pyo3::prelude::*;

mod arrays;
mod codec;
mod engine;
mod event;
mod fact;
mod partition;
mod records;
mod rules;
mod state;
mod zone;

#[pymodule]
fn tierstream_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("VERSION", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<engine::Engine>()?;
    m.add_class::<event::Decoder>()?;
    m.add_function(wrap_pyfunction!(engine::reencode, m)?)?;
    m.add_function(wrap_pyfunction!(engine::event_key_for_test, m)?)?;
    m.add_function(wrap_pyfunction!(engine::replay, m)?)?;
    m.add_function(wrap_pyfunction!(partition::partition_of, m)?)?;
    m.add_function(wrap_pyfunction!(arrays::pg_array, m)?)?;
    m.add_function(wrap_pyfunction!(records::change_records_for_test, m)?)?;
    Ok(())
}
