// The status page in a real browser (run by test_status_page.sh): Debian's
// chromium driven by playwright-core against a running `alphapulse serve`
// (port 0, the demo repository, a replay). Checks that the charts hold real
// data (SVG path points, table rows), that choosing a series draws its price
// chart and signals, writes build/test-status/status.png, fails on any JS
// error, and walks the auth prompt (401 -> token form -> Authorization).
"use strict";
const { spawn } = require("child_process");
const fs = require("fs");
const path = require("path");

const ROOT = process.env.AP_ROOT || path.resolve(__dirname, "..", "..");
const BIN = process.env.AP_BIN || path.join(ROOT, "build", "alphapulse");
const OUT = path.join(ROOT, "build", "test-status");
const CHROMIUM = "/usr/bin/chromium";
const { chromium } = require(path.join(ROOT, "build", "node", "playwright-core"));

const failures = [];
function check(cond, what) {
  console.log((cond ? "ok   " : "FAIL ") + what);
  if (!cond) failures.push(what);
  return cond;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function startServer() {
  return new Promise((resolve, reject) => {
    const data = path.join(ROOT, "examples", "data");
    const p = spawn(BIN, ["serve", "--port", "0", "--repository", path.join(ROOT, "examples", "models"),
                          "--replay", `GOOG/1d=${data}/goog_daily.csv,USDCHF/4h=${data}/usdchf_4h.csv`,
                          "--replay-speed", "5"], {cwd: ROOT, stdio: ["ignore", "pipe", "pipe"]});
    let log = "";
    const t = setTimeout(() => reject(new Error("server did not start:\n" + log)), 15000);
    const on = (b) => {
      log += b.toString();
      const m = log.match(/listening on http:\/\/[^:]+:(\d+)/);
      if (m) { clearTimeout(t); resolve({proc: p, port: +m[1], log: () => log}); }
    };
    p.stdout.on("data", on);
    p.stderr.on("data", on);
    p.on("exit", (c) => { clearTimeout(t); reject(new Error("server exited (" + c + "):\n" + log)); });
  });
}

async function main() {
  fs.mkdirSync(OUT, {recursive: true});
  if (!fs.existsSync(CHROMIUM)) {
    check(false, CHROMIUM + " exists (Debian's chromium: tools/setup-deps.sh installs it)");
    return;
  }
  const srv = await startServer();
  const base = `http://127.0.0.1:${srv.port}`;
  let stop = false;
  // a little prediction traffic, so the per-model rates and latencies move
  const load = (async () => {
    const kinds = [["pattern", "reversal"], ["pattern", "continuation"], ["regime", "bull"],
                   ["regime", "volatile"], ["ensemble", null]];
    while (!stop) {
      for (const [kind, target] of kinds)
        for (const s of [["GOOG", "1d"], ["USDCHF", "4h"]]) {
          const body = {symbol: s[0], timeframe: s[1]};
          if (target) body.target = target;
          try {
            await fetch(`${base}/v1/predict/${kind}`, {method: "POST", body: JSON.stringify(body)});
          } catch (e) { /* the server is going away at the end */ }
        }
      await sleep(100);
    }
  })();
  let browser;
  try {
    try {
      browser = await chromium.launch({
        executablePath: CHROMIUM, headless: true,
        args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync"]});
    } catch (e) {
      check(false, "chromium launches: " + e.message.split("\n")[0]);
      return;
    }
    await mainPage(browser, base);
    await authPage(browser, base);
  } finally {
    stop = true;
    await load;
    if (browser) await browser.close();
    const code = await new Promise((resolve) => {
      srv.proc.removeAllListeners("exit");
      srv.proc.on("exit", (c) => resolve(c));
      srv.proc.kill("SIGTERM");
    });
    check(code === 0 && !/Sanitizer|runtime error/.test(srv.log()),
          "the server stops cleanly (exit " + code + ")" + (code === 0 ? "" : ":\n" + srv.log()));
  }
}

/* JS errors of a page: console errors and uncaught exceptions; allow: a
   predicate for console messages that are expected (the auth test's 401). */
function watchErrors(page, allow) {
  const errors = [];
  page.on("console", (m) => {
    if (m.type() === "error" && !(allow && allow(m.text()))) errors.push("console: " + m.text());
  });
  page.on("pageerror", (e) => errors.push("pageerror: " + e.message));
  return errors;
}

async function mainPage(browser, base) {
  const page = await browser.newPage({viewport: {width: 1400, height: 1000}});
  const errors = watchErrors(page);
  const resp = await page.goto(base + "/");
  check(resp.status() === 200 && /text\/html/.test(resp.headers()["content-type"]),
        "GET / in a browser -> 200 text/html (" + resp.headers()["content-type"] + ")");
  await page.waitForFunction(() => document.querySelectorAll("#models tbody tr").length >= 7,
                             null, {timeout: 10000}).catch(() => {});
  const models = await page.$$eval("#models tbody tr", (trs) =>
    trs.map((tr) => [tr.dataset.model, tr.querySelector(".version").textContent]));
  check(models.length === 7, "models table lists the 7 demo models (" + models.map((m) => m[0]) + ")");
  check(models.every((m) => /^v\d+$/.test(m[1])), "every model shows its version (" +
        models.map((m) => m[1]) + ")");
  await sleep(5000); // five polls: five points of history
  const points = (sel) => page.$$eval(sel, (ps) => ps.map((p) => +p.dataset.points || 0));
  const pred = await points("#models svg.pred path");
  check(pred.length >= 5 && pred.filter((n) => n >= 3).length >= 5,
        "predictions/s sparklines drawn with real points (" + pred + ")");
  const predD = await page.$eval("#models tr[data-model=reversal] svg.pred path",
                                 (p) => p.getAttribute("d")).catch(() => "");
  const ys = [...predD.matchAll(/[ML][\d.]+,([\d.]+)/g)].map((m) => +m[1]);
  check(ys.length >= 3 && new Set(ys).size >= 2, "reversal's predictions/s sparkline is not flat (" +
        ys.slice(-6) + ")");
  const lat = await points("#models svg.lat path");
  check(lat.filter((n) => n >= 3).length >= 5, "p50/p99 sparklines drawn (" + lat + ")");
  const batch = await points("#c-batch path.line"), queue = await points("#c-queue path.line");
  // a line per model that ran batches in the window (bear and sideways get no traffic)
  check(batch.length >= 5 && Math.max(...batch) >= 3, "batch size chart: a line per busy model (" +
        batch + ")");
  check(queue.length === 7 && Math.max(...queue) >= 3, "queue depth chart: a line per model (" + queue + ")");
  const ingest = await points("#h-ingest-spark path");
  check(ingest.length === 1 && ingest[0] >= 4, "ingestion sparkline drawn (" + ingest + " points)");
  const rate = await page.textContent("#h-ingest");
  check(/^[1-9][\d.]* bars\/s$/.test(rate), "header shows the ingestion rate (" + rate + ")");
  const errs = await page.textContent("#h-errors");
  check(errs.length > 0, "header shows errors by code (" + errs + ")");

  const row = "#series tbody tr[data-series='GOOG/1d']";
  const t1 = await page.textContent(row + " .latest").catch(() => "");
  check(/^\d{4}-\d\d-\d\dT/.test(t1), "series table shows GOOG/1d with its latest bar time (" + t1 + ")");
  await sleep(2500);
  const t2 = await page.textContent(row + " .latest").catch(() => "");
  check(t2 > t1, "GOOG/1d's latest bar time advances (" + t1 + " -> " + t2 + ")");

  await page.click(row);
  await page.waitForFunction(() => {
    const p = document.querySelector("#c-price path.line");
    return p && +p.dataset.points >= 100;
  }, null, {timeout: 5000}).catch(() => {});
  const price = await points("#c-price path.line");
  check(price.length === 1 && price[0] >= 100, "price chart of GOOG/1d drawn (" + price + " points)");
  await page.waitForFunction(() => document.querySelectorAll("#signals td.prediction").length >= 7,
                             null, {timeout: 5000}).catch(() => {});
  const sig = await page.$$eval("#signals tbody tr", (trs) =>
    trs.map((tr) => [tr.dataset.model, (tr.querySelector(".prediction") || {}).textContent]));
  check(sig.length === 7 && sig.every((s) => s[1] !== undefined && isFinite(+s[1])),
        "signals: the latest prediction of every series model (" + JSON.stringify(sig) + ")");
  await page.screenshot({path: path.join(OUT, "status.png"), fullPage: true});
  check(fs.statSync(path.join(OUT, "status.png")).size > 10000, "screenshot build/test-status/status.png");
  check(errors.length === 0, "no JS error on the page (" + errors.join("; ") + ")");
  await page.close();
}

async function authPage(browser, base) {
  const page = await browser.newPage();
  // the 401 answered once below is logged by chromium as a failed resource
  const errors = watchErrors(page, (t) => /status of 401/.test(t));
  let answered401 = 0;
  const seen = [];
  await page.route("**/v1/status*", async (route) => {
    const auth = route.request().headers()["authorization"];
    if (!answered401) {
      answered401++;
      await route.fulfill({status: 401, headers: {"WWW-Authenticate": "Bearer"},
                           contentType: "application/json", body: '{"error": "token required"}'});
      return;
    }
    seen.push(auth);
    await route.continue();
  });
  await page.route("**/v1/predict/batch", (route) =>
    route.fulfill({status: 403, contentType: "application/json", body: '{"error": "role too low"}'}));
  await page.goto(base + "/");
  const form = await page.waitForSelector("#auth.show input[type=password]", {timeout: 5000})
    .catch(() => null);
  check(form !== null, "a 401 shows the token form (a password input)");
  check(seen.length === 0, "no poll while the form waits (" + seen.length + ")");
  await page.fill("#auth-token", "tok-status-page-123");
  await page.click("#auth-go");
  await page.waitForFunction(() => document.querySelectorAll("#models tbody tr").length >= 7,
                             null, {timeout: 5000}).catch(() => {});
  check(seen.length >= 1 && seen.every((a) => a === "Bearer tok-status-page-123"),
        "every poll after it carries Authorization: Bearer <the token> (" + seen.slice(0, 3) + ")");
  const kept = await page.evaluate(() => sessionStorage.getItem("alphapulse_token"));
  check(kept === "tok-status-page-123", "the token is kept in sessionStorage (alphapulse_token)");
  check(await page.isHidden("#auth"), "the form hides once the token works");
  await page.click("#series tbody tr[data-series='GOOG/1d']");
  await page.waitForFunction(() => /predict token/.test(document.querySelector("#signals-note").textContent),
                             null, {timeout: 5000}).catch(() => {});
  const note = await page.textContent("#signals-note");
  check(/signals need a predict token/.test(note), "a 403 on the signals says so (" + note + ")");
  // the 403 above is expected too
  const left = errors.filter((e) => !/status of 403/.test(e));
  check(left.length === 0, "no JS error on the auth page (" + left.join("; ") + ")");
  await page.close();
}

main().then(() => {
  if (failures.length) {
    console.log("\n" + failures.length + " check(s) failed");
    process.exit(1);
  }
  console.log("\nall checks passed");
  process.exit(0);
}, (e) => {
  console.log("FAIL " + (e && e.stack || e));
  process.exit(1);
});
