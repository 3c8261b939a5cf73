//! Graceful shutdown of long-lived calls. On SIGTERM the server stops accepting calls
//! and waits for the running ones; a push query, a PRINT or a Consume tail never ends by
//! itself, so each streaming response is wrapped to end with UNAVAILABLE once the server
//! drains (the client resumes from the last position it received), and the server then
//! exits within a bounded time instead of waiting for subscribers to hang up.

use futures::Stream;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::watch;
use tonic::Status;

/// Ends `inner` with UNAVAILABLE once `drain` turns true.
pub(crate) struct Draining<S> {
    inner: Pin<Box<S>>,
    drain: Pin<Box<dyn Future<Output = ()> + Send>>,
    done: bool,
}

impl<S> Draining<S> {
    pub(crate) fn new(inner: S, mut drain: watch::Receiver<bool>) -> Draining<S> {
        Draining {
            inner: Box::pin(inner),
            drain: Box::pin(async move {
                // A dropped sender (the server gone) drains too.
                let _ = drain.wait_for(|d| *d).await;
            }),
            done: false,
        }
    }
}

impl<S, T> Stream for Draining<S>
where
    S: Stream<Item = Result<T, Status>>,
{
    type Item = Result<T, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if self.drain.as_mut().poll(cx).is_ready() {
            self.done = true;
            return Poll::Ready(Some(Err(Status::unavailable(
                "the server is shutting down; reconnect and resume from the last position received",
            ))));
        }
        match self.inner.as_mut().poll_next(cx) {
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(None)
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test]
    async fn a_stream_ends_with_unavailable_when_the_server_drains() {
        let (tx, rx) = watch::channel(false);
        let (items_tx, items_rx) = tokio::sync::mpsc::channel::<Result<u32, Status>>(4);
        let mut s = Draining::new(tokio_stream::wrappers::ReceiverStream::new(items_rx), rx);
        items_tx.send(Ok(1)).await.unwrap();
        assert_eq!(s.next().await.unwrap().unwrap(), 1);
        tx.send(true).unwrap();
        let end = s.next().await.unwrap().unwrap_err();
        assert_eq!(end.code(), tonic::Code::Unavailable);
        assert!(s.next().await.is_none());
    }

    #[tokio::test]
    async fn a_stream_that_ends_by_itself_ends_with_ok() {
        let (_tx, rx) = watch::channel(false);
        let mut s = Draining::new(tokio_stream::iter(vec![Ok::<u32, Status>(7)]), rx);
        assert_eq!(s.next().await.unwrap().unwrap(), 7);
        assert!(s.next().await.is_none());
    }
}
