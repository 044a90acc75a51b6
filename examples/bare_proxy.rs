//! The floor under llm-router's cost: a plain hyper reverse proxy with the
//! same server, client and allocator, and nothing else (no parsing, no
//! layers). `benches/load.sh` runs it as a reference row beside nginx.
//!
//! ```sh
//! cargo run --release --example bare_proxy -- 127.0.0.1:9002 http://127.0.0.1:9001
//! ```

use http::{Request, Uri};
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), llm_router::BoxError> {
    // The same runtime choice as llm-router's binary: single-threaded when
    // the process may run on one CPU only.
    let mut builder = match std::thread::available_parallelism() {
        Ok(n) if n.get() == 1 => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    let rt = builder.enable_all().build()?;
    rt.block_on(run())
}

async fn run() -> Result<(), llm_router::BoxError> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9002".into());
    let upstream: Uri = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:9001".into())
        .parse()?;
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<_, Incoming> = Client::builder(TokioExecutor::new()).build(connector);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let client = client.clone();
        let upstream = upstream.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let client = client.clone();
                let upstream = upstream.clone();
                async move {
                    let (mut parts, body) = req.into_parts();
                    let path = parts
                        .uri
                        .path_and_query()
                        .map(|p| p.as_str())
                        .unwrap_or("/");
                    let uri: Result<Uri, _> =
                        format!("{upstream}{}", path.trim_start_matches('/')).parse();
                    parts.uri = uri.unwrap_or(upstream);
                    parts.headers.remove(http::header::HOST);
                    client.request(Request::from_parts(parts, body)).await
                }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
