//! `terrax-browser-check URL`: what a user of the seed does in the browser, done by headless
//! Chromium through chromedriver (WebDriver). It opens the beer API's Swagger UI, checks that
//! it lists the beer operations, creates a beer with "Try it out" and "Execute" on
//! `POST /api/beers`, checks the UI shows 201, and saves a screenshot.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};

/// The operations the beer API documents, as Swagger UI lists them.
const OPERATIONS: [(&str, &str); 5] = [
    ("GET", "/api/beers"),
    ("POST", "/api/beers"),
    ("GET", "/api/beers/{id}"),
    ("PUT", "/api/beers/{id}"),
    ("DELETE", "/api/beers/{id}"),
];

/// How long the page gets for each thing it must show.
const PATIENCE: Duration = Duration::from_secs(30);

#[derive(Parser)]
struct Args {
    /// The Swagger UI page, e.g. http://127.0.0.1/swagger-ui.html.
    url: String,
    /// The name of the beer to create.
    #[arg(long, default_value = "Swagger Saison")]
    beer: String,
    /// Where to save a screenshot of the page after the beer is created.
    #[arg(long)]
    screenshot: Option<PathBuf>,
    /// The browser.
    #[arg(long, default_value = "/usr/bin/chromium")]
    chromium: PathBuf,
    /// The WebDriver server for it.
    #[arg(long, default_value = "/usr/bin/chromedriver")]
    chromedriver: PathBuf,
}

/// chromedriver, killed (by its PID, which this program started) when dropped.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let _driver = Driver(
        Command::new(&args.chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", args.chromedriver.display()))?,
    );
    let profile = tempfile::tempdir()?;
    let client = connect(port, &args, profile.path()).await?;
    let outcome = check(&client, &args).await;
    let _ = client.close().await;
    outcome
}

/// A session in a fresh headless Chromium, with the flags that keep it off the network.
async fn connect(port: u16, args: &Args, profile: &std::path::Path) -> Result<Client> {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("browserName".into(), "chrome".into());
    capabilities.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": args.chromium,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                     "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync",
                     "--window-size=1280,1600",
                     format!("--user-data-dir={}", profile.display())],
        }),
    );
    let deadline = Instant::now() + PATIENCE;
    loop {
        let attempt = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await;
        match attempt {
            Ok(client) => return Ok(client),
            Err(e) if Instant::now() > deadline => bail!("no WebDriver session: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

async fn check(client: &Client, args: &Args) -> Result<()> {
    client.goto(&args.url).await?;
    let listed = eventually("the beer operations to be listed", || async {
        let listed = operations(client).await?;
        Ok(OPERATIONS
            .iter()
            .all(|op| listed.iter().any(|(m, p)| (m.as_str(), p.as_str()) == *op))
            .then_some(listed))
    })
    .await?;
    for (method, path) in &listed {
        println!("swagger-ui lists {method} {path}");
    }

    let post = operation(client, "POST", "/api/beers").await?;
    post.find(Locator::Css(".opblock-summary-control"))
        .await?
        .click()
        .await?;
    click_in(client, "POST", "/api/beers", "button.try-out__btn").await?;
    let body = serde_json::json!({"name": args.beer, "brewery": "Terrax",
                                  "style": "Saison", "abv": 6.5, "ibu": 30});
    let editor = eventually("the request body editor", || async {
        find_in(client, "POST", "/api/beers", "textarea.body-param__text").await
    })
    .await?;
    editor.clear().await?;
    editor.send_keys(&body.to_string()).await?;
    click_in(client, "POST", "/api/beers", "button.execute").await?;
    let status = eventually("the response to be shown", || async {
        let Some(cell) = find_in(
            client,
            "POST",
            "/api/beers",
            ".live-responses-table tr.response .response-col_status",
        )
        .await?
        else {
            return Ok(None);
        };
        let text = cell.text().await?;
        Ok((!text.trim().is_empty()).then_some(text.trim().to_string()))
    })
    .await?;
    if let Some(path) = &args.screenshot {
        std::fs::write(path, client.screenshot().await?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("screenshot saved to {}", path.display());
    }
    if status != "201" {
        bail!("creating a beer through swagger-ui answered {status}, not 201");
    }
    println!("created the beer {:?} through swagger-ui: 201", args.beer);
    Ok(())
}

/// (method, path) of every operation on the page.
async fn operations(client: &Client) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for block in client.find_all(Locator::Css(".opblock")).await? {
        let method = block
            .find(Locator::Css(".opblock-summary-method"))
            .await?
            .text()
            .await?;
        let path = block.find(Locator::Css(".opblock-summary-path")).await?;
        let path = match path.attr("data-path").await? {
            Some(p) => p,
            None => path.text().await?,
        };
        out.push((method.trim().to_uppercase(), path.trim().to_string()));
    }
    Ok(out)
}

/// The block of one operation.
async fn operation(client: &Client, method: &str, path: &str) -> Result<Element> {
    for block in client
        .find_all(Locator::Css(&format!(".opblock-{}", method.to_lowercase())))
        .await?
    {
        let shown = block.find(Locator::Css(".opblock-summary-path")).await?;
        if shown.attr("data-path").await?.as_deref() == Some(path) {
            return Ok(block);
        }
    }
    bail!("swagger-ui has no {method} {path}")
}

/// An element inside an operation's block, if it is there yet. Swagger UI re-renders as it
/// goes, so the block is looked up afresh each time.
async fn find_in(client: &Client, method: &str, path: &str, css: &str) -> Result<Option<Element>> {
    let block = operation(client, method, path).await?;
    match block.find(Locator::Css(css)).await {
        Ok(element) => Ok(Some(element)),
        Err(e) if e.is_no_such_element() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

async fn click_in(client: &Client, method: &str, path: &str, css: &str) -> Result<()> {
    let button = eventually(css, || async { find_in(client, method, path, css).await }).await?;
    button.click().await?;
    Ok(())
}

/// Polls until `probe` yields a value, for at most [`PATIENCE`].
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        match probe().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) if Instant::now() > deadline => bail!("timed out waiting for {what}"),
            Err(e) if Instant::now() > deadline => {
                return Err(e.context(format!("waiting for {what}")));
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}
