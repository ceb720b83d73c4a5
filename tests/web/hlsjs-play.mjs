// SPDX-License-Identifier: MPL-2.0
// Plays an HLS playlist with hls.js in headless Chromium and prints what the
// page saw, one `key=value` per line, for tests/hlsjs.rs.
//
//   node hlsjs-play.mjs ROOT PLAYLIST SECONDS
//
// ROOT is served over HTTP on 127.0.0.1 (an ephemeral port) under /media/;
// PLAYLIST is the playlist's path inside ROOT, or an http:// URL played
// from another server (streambuffer serve; CORS). hls.js runs in
// low-latency mode (loading parts where a playlist has them) unless
// HLSJS_LOW_LATENCY=0. The page plays it muted in a
// <video>; over the DevTools protocol the script samples the video element
// every 250 ms for SECONDS (or until it ends) and then prints the samples'
// summary and every hls.js error.
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import CDP from 'chrome-remote-interface';

const [root, playlist, secondsArg] = process.argv.slice(2);
const seconds = Number(secondsArg);
if (!root || !playlist || !(seconds > 0)) {
  console.error('usage: node hlsjs-play.mjs ROOT PLAYLIST SECONDS');
  process.exit(2);
}
const here = path.dirname(fileURLToPath(import.meta.url));
const hlsJs = path.join(here, 'node_modules', 'hls.js', 'dist', 'hls.js');

const page = `<!doctype html><html><body>
<video id="v" muted autoplay playsinline></video>
<script src="/hls.js"></script>
<script>
  const codecs = {
    avc1: 'video/mp4; codecs="avc1.42E01E"',
    mp4a: 'audio/mp4; codecs="mp4a.40.2"',
    hvc1: 'video/mp4; codecs="hvc1.1.6.L93.B0"',
    'ac-3': 'audio/mp4; codecs="ac-3"',
    mp3: 'audio/mpeg',
  };
  window.report = { errors: [], supports: {}, parts: 0, arrivals: [] };
  for (const [name, type] of Object.entries(codecs)) {
    window.report.supports[name] = window.MediaSource ? MediaSource.isTypeSupported(type) : false;
  }
  const video = document.getElementById('v');
  if (!Hls.isSupported()) {
    window.report.errors.push({ type: 'setup', details: 'Hls.isSupported() is false', fatal: true });
  } else {
    const hls = new Hls({ lowLatencyMode: ${process.env.HLSJS_LOW_LATENCY !== '0'} });
    window.hls = hls;
    hls.on(Hls.Events.FRAG_LOADED, (_, d) => {
      if (d.part) window.report.parts += 1;
      // How long after the sink received its last byte the player had it:
      // the end of the part (or segment) on the program date-time clock.
      const f = d.frag;
      if (f && f.programDateTime) {
        const end = d.part ? (d.part.start - f.start) + d.part.duration : f.duration;
        window.report.arrivals.push((Date.now() - (f.programDateTime + end * 1000)) / 1000);
      }
    });
    hls.on(Hls.Events.ERROR, (_, d) => {
      window.report.errors.push({ type: d.type, details: d.details, fatal: d.fatal, t: video.currentTime });
    });
    hls.loadSource(${JSON.stringify(/^https?:/.test(playlist) ? playlist : '/media/' + encodeURI(playlist))});
    hls.attachMedia(video);
    video.play().catch((e) => window.report.errors.push({ type: 'play', details: String(e), fatal: false }));
  }
  window.sample = () => {
    const q = video.getVideoPlaybackQuality();
    return {
      t: video.currentTime,
      frames: q.totalVideoFrames,
      dropped: q.droppedVideoFrames,
      audioBytes: video.webkitAudioDecodedByteCount || 0,
      ended: video.ended,
      mediaError: video.error ? video.error.code + ' ' + video.error.message : '',
      // Seconds from when the content shown was received (its
      // EXT-X-PROGRAM-DATE-TIME) to now: the distance behind live.
      behind: window.hls && window.hls.playingDate ? (Date.now() - window.hls.playingDate.getTime()) / 1000 : null,
    };
  };
</script></body></html>`;

const types = { '.m3u8': 'application/vnd.apple.mpegurl', '.ts': 'video/mp2t', '.js': 'text/javascript' };
const server = http.createServer((req, res) => {
  const url = decodeURIComponent(new URL(req.url, 'http://x').pathname);
  let file = null;
  if (url === '/') {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(page);
    return;
  } else if (url === '/hls.js') {
    file = hlsJs;
  } else if (url.startsWith('/media/')) {
    const resolved = path.resolve(root, '.' + url.slice('/media'.length));
    if (resolved.startsWith(path.resolve(root) + path.sep)) file = resolved;
  }
  fs.readFile(file ?? '/nonexistent', (err, data) => {
    if (err) {
      res.writeHead(404);
      res.end();
      return;
    }
    res.writeHead(200, {
      'content-type': types[path.extname(file)] ?? 'application/octet-stream',
      'cache-control': 'no-store',
    });
    res.end(data);
  });
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const pageUrl = `http://127.0.0.1:${server.address().port}/`;

const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'hlsjs-chromium-'));
const chromium = spawn(process.env.CHROMIUM || 'chromium', [
  '--headless=new', '--no-sandbox', '--disable-gpu', '--mute-audio', '--no-first-run',
  '--autoplay-policy=no-user-gesture-required', '--remote-debugging-port=0',
  `--user-data-dir=${profile}`, 'about:blank',
], { stdio: ['ignore', 'ignore', 'pipe'] });
const finish = (code) => {
  server.close();
  const cleanUp = () => {
    try {
      fs.rmSync(profile, { recursive: true, force: true });
    } finally {
      process.exit(code);
    }
  };
  if (chromium.exitCode !== null || chromium.signalCode !== null) cleanUp();
  chromium.once('exit', cleanUp);
  chromium.kill('SIGKILL');
};
setTimeout(() => { console.error('hlsjs-play: timed out'); finish(3); }, (seconds + 60) * 1000);

const port = await new Promise((resolve, reject) => {
  let text = '';
  chromium.stderr.on('data', (d) => {
    text += d;
    const m = /DevTools listening on ws:\/\/[^:]+:(\d+)\//.exec(text);
    if (m) resolve(Number(m[1]));
  });
  chromium.on('exit', (code) => reject(new Error(`chromium exited (${code}): ${text}`)));
});

const client = await CDP({ port, host: '127.0.0.1' });
const { Page, Runtime } = client;
await Page.enable();
await Page.navigate({ url: pageUrl });
await Page.loadEventFired();
const evaluate = async (expr) => {
  const r = await Runtime.evaluate({ expression: `JSON.stringify(${expr})`, returnByValue: true });
  if (r.exceptionDetails) throw new Error(r.exceptionDetails.text);
  return JSON.parse(r.result.value);
};

const samples = [];
const start = Date.now();
while (Date.now() - start < seconds * 1000) {
  await new Promise((r) => setTimeout(r, 250));
  const s = await evaluate('window.sample()');
  samples.push(s);
  if (s.ended) break;
}
const report = await evaluate('window.report');
await client.close();

const playing = samples.filter((s) => s.t > 0);
const last = samples[samples.length - 1];
console.log(`samples=${samples.length}`);
console.log(`first-time=${playing.length ? playing[0].t : 0}`);
console.log(`last-time=${last.t}`);
console.log(`max-time=${Math.max(...samples.map((s) => s.t))}`);
console.log(`time-decreased=${samples.some((s, i) => i > 0 && s.t + 0.001 < samples[i - 1].t)}`);
console.log(`video-frames=${last.frames}`);
console.log(`dropped-frames=${last.dropped}`);
console.log(`audio-bytes=${last.audioBytes}`);
console.log(`ended=${last.ended}`);
console.log(`media-error=${last.mediaError}`);
console.log(`supports=${Object.entries(report.supports).map(([k, v]) => `${k}:${v}`).join(',')}`);
const behind = playing.slice(Math.floor(playing.length / 2)).map((s) => s.behind).filter((b) => b !== null).sort((a, b) => a - b);
const at = (q) => (behind.length ? behind[Math.min(behind.length - 1, Math.round((behind.length - 1) * q))].toFixed(3) : '');
console.log(`behind-median=${at(0.5)}`);
console.log(`behind-p95=${at(0.95)}`);
console.log(`parts-loaded=${report.parts}`);
// Arrivals once playing has settled: the first few are catch-up fetches of
// content already old.
const arrivals = report.arrivals.slice(Math.floor(report.arrivals.length / 3)).sort((a, b) => a - b);
const arrival = (q) => (arrivals.length ? arrivals[Math.min(arrivals.length - 1, Math.round((arrivals.length - 1) * q))].toFixed(3) : '');
console.log(`arrival-median=${arrival(0.5)}`);
console.log(`arrival-p95=${arrival(0.95)}`);
console.log(`errors=${report.errors.length}`);
console.log(`fatal-errors=${report.errors.filter((e) => e.fatal).length}`);
for (const e of report.errors) {
  const at = typeof e.t === 'number' ? ` at ${e.t.toFixed(3)}` : '';
  console.log(`error=${e.fatal ? 'fatal ' : ''}${e.type} ${e.details}${at}`);
}
finish(0);
