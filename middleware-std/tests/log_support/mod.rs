//! The log capture the logging tests share: a writer into a shared buffer, and a plain-text
//! subscriber for the current thread that writes into one.

// Each test binary uses the part it needs.
#![allow(dead_code)]

use std::{
    io,
    sync::{Arc, Mutex},
};

/// A writer into a shared buffer: its clones write into the same bytes.
#[derive(Clone, Default)]
pub(crate) struct Buf(pub(crate) Arc<Mutex<Vec<u8>>>);

impl Buf {
    /// What was written so far.
    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl io::Write for Buf {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buf {
    type Writer = Self;

    fn make_writer(&'a self) -> Self {
        self.clone()
    }
}

/// A plain-text subscriber for this thread, and a reader of what it wrote.
pub(crate) fn subscriber() -> (tracing::subscriber::DefaultGuard, impl Fn() -> String) {
    let buf = Buf::default();
    let read = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(buf)
        .with_ansi(false)
        .finish();
    (tracing::subscriber::set_default(subscriber), move || {
        read.text()
    })
}
