//! [`Watched`]: a connection's IO. It notes in the connection's
//! [`Activity`] when bytes arrive while no request is in flight (the start of
//! a request head) and whether the client opened with the HTTP/2 preface, and
//! it gathers the writes of an answer that waits for its upstream (see the
//! [parent module](super)).

use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::Activity;

/// The HTTP/2 client preface (RFC 9113 §3.4).
pub(crate) const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// [`Watched::sniff`] once the first bytes were not the preface.
const SNIFF_H1: u8 = u8::MAX;
/// [`Watched::sniff`] once the whole preface arrived.
const SNIFF_H2: u8 = u8::MAX - 1;

pin_project! {
    /// A connection's IO, noting arrivals in its [`Activity`].
    #[derive(Debug)]
    pub(crate) struct Watched<T> {
        #[pin]
        io: T,
        activity: Arc<Activity>,
        // Preface bytes matched so far, or `SNIFF_H1` / `SNIFF_H2`.
        sniff: u8,
        // The length of the write last put off (0: none), and how many
        // turns in a row were.
        gathered: usize,
        turns: u8,
    }
}

/// A write is put off only while it holds less than this.
pub(crate) const GATHER_BYTES: usize = 64 * 1024;

/// At most this many turns of the scheduler in a row put a write off.
pub(crate) const GATHER_TURNS: u8 = 16;

impl<T> Watched<T> {
    pub(crate) fn new(io: T, activity: Arc<Activity>) -> Self {
        Watched {
            io,
            activity,
            sniff: 0,
            gathered: 0,
            turns: 0,
        }
    }
}

impl<T: AsyncRead> AsyncRead for Watched<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let polled = this.io.poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let new = buf.filled().get(before..).unwrap_or_default();
            if !new.is_empty() {
                if usize::from(*this.sniff) < PREFACE.len() {
                    for byte in new {
                        let at = usize::from(*this.sniff);
                        if PREFACE.get(at) != Some(byte) {
                            *this.sniff = SNIFF_H1;
                            break;
                        }
                        if at + 1 == PREFACE.len() {
                            *this.sniff = SNIFF_H2;
                            this.activity.on_preface();
                            break;
                        }
                        *this.sniff += 1;
                    }
                }
                this.activity.on_bytes();
            }
        }
        polled
    }
}

impl<T: AsyncWrite> AsyncWrite for Watched<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        // hyper writes its whole buffer at each flush, and buffers the body's
        // frames meanwhile (`writev(false)`): a write put off comes back
        // with what the answer added in between.
        let activity = &this.activity;
        if *this.sniff == SNIFF_H1
            && activity.body_waiting.load(Ordering::Relaxed)
            && buf.len() > *this.gathered
            && buf.len() < GATHER_BYTES
            && *this.turns < GATHER_TURNS
        {
            *this.gathered = buf.len();
            *this.turns += 1;
            activity.body_waiting.store(false, Ordering::Relaxed);
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        *this.gathered = 0;
        *this.turns = 0;
        this.io.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::super::NONE;
    use super::*;
    use tokio::time::Instant;

    /// A socket that takes every write whole and counts them.
    #[derive(Default)]
    struct Sink(Vec<usize>);

    impl AsyncWrite for Sink {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.0.push(buf.len());
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[derive(Default)]
    struct Wakes(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_waiting_answer_gathers_its_writes_while_they_grow() {
        let activity = Activity::new(Instant::now());
        let mut io = Watched::new(Sink::default(), activity.clone());
        io.sniff = SNIFF_H1;
        let wakes = Arc::new(Wakes::default());
        let waker = std::task::Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        let mut write = |io: &mut Watched<Sink>, len: usize| {
            let buf = vec![b'x'; len];
            Pin::new(io).poll_write(&mut cx, &buf)
        };
        // An answer that is not waiting (a whole body) goes out at once.
        assert!(matches!(write(&mut io, 10), Poll::Ready(Ok(10))));
        // A waiting one: put off (its task woken to try again) while it
        // grows between turns, then out in one write.
        activity.body_waiting.store(true, Ordering::Relaxed);
        assert!(write(&mut io, 100).is_pending());
        activity.body_waiting.store(true, Ordering::Relaxed);
        assert!(write(&mut io, 200).is_pending());
        activity.body_waiting.store(true, Ordering::Relaxed);
        assert!(matches!(write(&mut io, 200), Poll::Ready(Ok(200))));
        assert_eq!(wakes.0.load(Ordering::Relaxed), 2);
        // Bounded in turns and in bytes.
        for turn in 1..=usize::from(GATHER_TURNS) {
            activity.body_waiting.store(true, Ordering::Relaxed);
            assert!(write(&mut io, turn).is_pending());
        }
        activity.body_waiting.store(true, Ordering::Relaxed);
        assert!(write(&mut io, 1000).is_ready());
        activity.body_waiting.store(true, Ordering::Relaxed);
        assert!(write(&mut io, GATHER_BYTES).is_ready());
        assert_eq!(io.io.0, [10, 200, 1000, GATHER_BYTES]);
        // HTTP/2 frames its own writes.
        io.sniff = SNIFF_H2;
        activity.body_waiting.store(true, Ordering::Relaxed);
        assert!(write(&mut io, 10).is_ready());
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn the_preface_is_recognized_across_reads() {
        use tokio::io::AsyncReadExt;
        let a = Activity::new(Instant::now());
        let (mut client, server) = tokio::io::duplex(64);
        let mut watched = Watched::new(server, a.clone());
        let mut buf = [0u8; 64];
        tokio::io::AsyncWriteExt::write_all(&mut client, &PREFACE[..10])
            .await
            .unwrap();
        let n = watched.read(&mut buf).await.unwrap();
        assert_eq!(n, 10);
        assert!(!a.h2.load(Ordering::Relaxed));
        tokio::io::AsyncWriteExt::write_all(&mut client, &PREFACE[10..])
            .await
            .unwrap();
        assert_eq!(watched.read(&mut buf).await.unwrap(), 14);
        assert!(a.h2.load(Ordering::Relaxed));
        // Idle (no head) once the preface is complete.
        assert_eq!(a.head_since.load(Ordering::Relaxed), NONE);

        let b = Activity::new(Instant::now());
        let (mut client, server) = tokio::io::duplex(64);
        let mut watched = Watched::new(server, b.clone());
        tokio::io::AsyncWriteExt::write_all(&mut client, b"POST / HTTP/1.1\r\n")
            .await
            .unwrap();
        assert_eq!(watched.read(&mut buf).await.unwrap(), 17);
        assert!(!b.h2.load(Ordering::Relaxed));
        assert_eq!(watched.sniff, SNIFF_H1);
    }
}
