//! `Model.stream`: the engine's generation loop on its own thread, its text pieces sent over a
//! channel to a Python iterator that waits for them with the GIL released. Dropping the
//! iterator closes the channel, and the generation stops at its next piece.

use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};

use bitnet_engine::receipt::finish_name;
use bitnet_engine::{EngineError, GenerateRequest, Generation};
use pyo3::prelude::*;

use crate::{engine_error, Engine};

/// What the generation thread sends.
enum Event {
    Text(String),
    Done(Result<Generation, EngineError>),
}

/// The outcome, once the generation has ended.
struct Outcome {
    tokens: Vec<u32>,
    finish_reason: &'static str,
}

/// An iterator of the text pieces of one generation (from `Model.stream`). After it is
/// exhausted, `tokens` holds the generated token ids and `finish_reason` why it ended
/// ("end_of_generation", "stop_string", "length" or "context_full").
#[pyclass(frozen, module = "bitnet")]
pub struct TextStream {
    events: Mutex<Receiver<Event>>,
    outcome: Mutex<Option<Outcome>>,
}

impl TextStream {
    /// Starts the generation on a new thread.
    pub(crate) fn start(engine: Arc<Engine>, request: GenerateRequest, capacity: usize) -> Self {
        let (sender, events) = channel();
        std::thread::spawn(move || {
            let result = engine.generate(&request, capacity, |piece| {
                sender
                    .send(Event::Text(piece.to_string()))
                    .map_err(|_| "the stream was closed".to_string())
            });
            // The receiver is gone only if the iterator was dropped: nobody to tell.
            let _ = sender.send(Event::Done(result));
        });
        TextStream {
            events: Mutex::new(events),
            outcome: Mutex::new(None),
        }
    }

    fn outcome<T>(&self, read: impl FnOnce(&Outcome) -> T) -> Option<T> {
        self.outcome
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .as_ref()
            .map(read)
    }
}

#[pymethods]
impl TextStream {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<String>> {
        loop {
            let event = py.allow_threads(|| {
                self.events
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .recv()
            });
            match event {
                Ok(Event::Text(piece)) if piece.is_empty() => continue,
                Ok(Event::Text(piece)) => return Ok(Some(piece)),
                Ok(Event::Done(Ok(generation))) => {
                    *self
                        .outcome
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Outcome {
                        tokens: generation.tokens,
                        finish_reason: finish_name(generation.finish),
                    });
                    return Ok(None);
                }
                Ok(Event::Done(Err(e))) => return Err(engine_error(e)),
                // Already exhausted (or failed): stays exhausted.
                Err(_) => return Ok(None),
            }
        }
    }

    /// The generated token ids (the end-of-generation token included, if one ended it); None
    /// until the iterator is exhausted.
    #[getter]
    fn tokens(&self) -> Option<Vec<u32>> {
        self.outcome(|o| o.tokens.clone())
    }

    /// Why the generation ended; None until the iterator is exhausted.
    #[getter]
    fn finish_reason(&self) -> Option<&'static str> {
        self.outcome(|o| o.finish_reason)
    }
}
