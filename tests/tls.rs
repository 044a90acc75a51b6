//! TLS on both sides: the proxy serving HTTPS (rustls, HTTP/2 by ALPN) from
//! `tls_cert`/`tls_key`, and a backend reached over HTTPS with
//! `tls_verify = false` (a self-signed upstream) or `true` (refused).

mod support;

use serde_json::Value;
use support::{bounded, chat_body, client, stream_body, Proxy};

struct Certs {
    dir: std::path::PathBuf,
}

impl Certs {
    fn new(name: &str) -> Certs {
        let dir =
            std::env::temp_dir().join(format!("llm-router-tls-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let certified =
            rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
                .unwrap();
        std::fs::write(dir.join("cert.pem"), certified.cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), certified.signing_key.serialize_pem()).unwrap();
        Certs { dir }
    }

    fn cert(&self) -> String {
        self.dir.join("cert.pem").display().to_string()
    }

    fn key(&self) -> String {
        self.dir.join("key.pem").display().to_string()
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An HTTPS proxy answering model `echo` with the mock provider.
async fn https_proxy(certs: &Certs) -> Proxy {
    Proxy::start(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n\n\
         [[backends]]\nname = \"local\"\nprovider = \"mock\"\n\n\
         [[models]]\nname = \"echo\"\ntargets = [{{ backend = \"local\" }}]\n",
        certs.cert(),
        certs.key()
    ))
    .await
}

/// A plain proxy whose model `echo` goes to `https_url` over TLS.
async fn front_proxy(https_url: &str, tls_verify: bool) -> Proxy {
    Proxy::start(&format!(
        "[stack]\norder = []\n\n\
         [[backends]]\nname = \"tls\"\nprovider = \"openai\"\nbase_url = \"{https_url}/v1\"\ntls_verify = {tls_verify}\n\n\
         [[models]]\nname = \"echo\"\ntargets = [{{ backend = \"tls\" }}]\n"
    ))
    .await
}

#[tokio::test]
async fn proxy_serves_https_and_reaches_an_https_upstream() {
    let certs = Certs::new("serve");
    let upstream = https_proxy(&certs).await;
    let https_url = format!("https://{}", upstream.addr());

    // A plain request on the TLS port is not served.
    let plain = client()
        .get(format!("http://{}/health", upstream.addr()))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());

    let front = front_proxy(&https_url, false).await;
    let answer: Value = bounded("chat over TLS", async {
        client()
            .post(front.at("/v1/chat/completions"))
            .json(&chat_body("echo"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    })
    .await;
    assert_eq!(answer["object"], "chat.completion");
    assert_eq!(answer["model"], "echo");

    // Streamed through both proxies, over TLS in the middle.
    let text = bounded("stream over TLS", async {
        let response = client()
            .post(front.at("/v1/chat/completions"))
            .json(&stream_body("echo"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    })
    .await;
    assert!(text.starts_with("data: {"), "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
}

#[tokio::test]
async fn an_unverifiable_upstream_certificate_is_a_502() {
    let certs = Certs::new("verify");
    let upstream = https_proxy(&certs).await;
    let front = front_proxy(&format!("https://{}", upstream.addr()), true).await;
    let response = bounded("chat to an untrusted upstream", async {
        client()
            .post(front.at("/v1/chat/completions"))
            .json(&chat_body("echo"))
            .send()
            .await
            .unwrap()
    })
    .await;
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.unwrap();
    support::assert_openai_error(&body);
}
