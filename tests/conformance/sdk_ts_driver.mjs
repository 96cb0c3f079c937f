// The vendor's TypeScript SDK (@lasersell/lasersell-sdk) against `lasersell-bot sim`.
//
// Same flow as sdk_py_driver.py, through the TS SDK's public API: proveOwnership +
// ExitApiClient.registerWallet, StreamSession.connect, every client message type,
// signUnsignedTx + sendTransaction(sendTargetRpc) for every exit and mirror buy, and
// confirmation with @solana/web3.js Connection.confirmTransaction (websocket
// signatureSubscribe on RPC port + 1). Every text frame the SDK's socket receives is
// also run through the SDK's own serverMessageFromText (the SDK skips frames it cannot
// parse without a word). Copied next to node_modules and run there; prints one JSON line.
//
// Usage: node sdk_ts_driver.mjs STREAM_URL API_URL RPC_URL KEY1 KEY2 WATCHED1 WATCHED2

import { readFileSync } from "node:fs";
import WebSocket from "ws";
import { Connection, Keypair } from "@solana/web3.js";
import {
  ExitApiClient,
  StreamClient,
  StreamSession,
  proveOwnership,
  sendTargetRpc,
  sendTransaction,
  serverMessageFromText,
  signUnsignedTx,
  strategyConfigFromOptional,
} from "@lasersell/lasersell-sdk";

const API_KEY = "conformance-key";
const PHASE_TIMEOUT_MS = 8000;
const MIRROR_LAMPORTS = 20_000_000;
const QUIET = strategyConfigFromOptional({ target_profit_pct: 500, stop_loss_pct: 95 });
const TRIGGER_HAPPY = strategyConfigFromOptional({ target_profit_pct: 0.01, stop_loss_pct: 0.01 });

const frames = {};
const parseFailures = [];
let signatureNotifications = 0;

// Observe, do not alter: every text frame on the SDK's stream socket goes through the
// SDK's parser here too; the RPC websocket's signature notifications are counted.
const originalEmit = WebSocket.prototype.emit;
WebSocket.prototype.emit = function (event, ...args) {
  if (event === "message" && !args[1]) {
    const text = args[0].toString();
    if (String(this.url).includes("/v1/ws")) {
      try {
        const message = serverMessageFromText(text);
        frames[message.type] = (frames[message.type] ?? 0) + 1;
      } catch (error) {
        parseFailures.push({ frame: text.slice(0, 300), error: String(error) });
      }
    } else if (text.includes("signatureNotification")) {
      signatureNotifications += 1;
    }
  }
  return originalEmit.call(this, event, ...args);
};

function loadKeypair(path) {
  return Keypair.fromSecretKey(Uint8Array.from(JSON.parse(readFileSync(path, "utf8"))));
}

class Driver {
  constructor(session, wallets, rpcUrl) {
    this.session = session;
    this.wallets = wallets;
    this.target = sendTargetRpc(rpcUrl);
    this.connection = new Connection(rpcUrl, { commitment: "confirmed" });
    this.events = [];
    this.exits = [];
    this.mirrors = [];
    this.errors = [];
    this.pending = new Set();
    this.confirmedByWebsocket = 0;
  }

  async pumpUntil(what, done, timeoutMs = PHASE_TIMEOUT_MS) {
    const deadline = Date.now() + timeoutMs;
    let next = null;
    while (!done()) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new Error(`phase "${what}": not reached in ${timeoutMs} ms`);
      next ??= this.session.recv();
      const event = await Promise.race([
        next, new Promise((resolve) => setTimeout(() => resolve("tick"), Math.min(remaining, 200))),
      ]);
      if (event === "tick") continue;
      next = null;
      if (event === null) throw new Error(`phase "${what}": the SDK session ended`);
      this.handle(event);
    }
  }

  handle(event) {
    this.events.push(event);
    const kind = event.message.type;
    if (kind === "exit_signal_with_tx") this.spawn(this.executeExit(event.message));
    else if (kind === "mirror_buy_signal") this.spawn(this.executeMirror(event.message));
    else if (kind === "error") this.errors.push(`${event.message.code}: ${event.message.message}`);
  }

  spawn(promise) {
    this.pending.add(promise);
    promise.finally(() => this.pending.delete(promise));
  }

  async signSendConfirm(unsignedB64, wallet) {
    const tx = signUnsignedTx(unsignedB64, this.wallets[wallet]);
    const signature = await sendTransaction(this.target, tx);
    const before = signatureNotifications;
    const height = await this.connection.getBlockHeight();
    const result = await this.connection.confirmTransaction({
      signature,
      blockhash: tx.message.recentBlockhash,
      lastValidBlockHeight: height + 150,
    }, "confirmed");
    if (signatureNotifications > before) this.confirmedByWebsocket += 1;
    return { signature, err: result.value.err };
  }

  async executeExit(message) {
    let outcome;
    try {
      outcome = await this.signSendConfirm(message.unsigned_tx_b64, message.wallet_pubkey);
    } catch (error) {
      outcome = { signature: null, err: String(error) };
    }
    this.exits.push({ position_id: message.position_id, reason: message.reason, ...outcome });
  }

  async executeMirror(message) {
    let outcome;
    try {
      outcome = await this.signSendConfirm(message.unsigned_tx_b64, message.user_wallet);
    } catch (error) {
      outcome = { signature: null, err: String(error) };
    }
    const success = outcome.err === null;
    this.session.sender().mirrorBuyResult(message.mint, success);
    this.mirrors.push({ mint: message.mint, watched: message.watched_wallet, success, ...outcome });
  }

  of(kind) {
    return this.events.filter((e) => e.message.type === kind);
  }

  closed(positionId) {
    return this.of("position_closed").find((e) => e.message.position_id === positionId);
  }

  landed(positionId) {
    return this.exits.some((x) => x.position_id === positionId && x.signature);
  }

  openIds(wallet) {
    return this.session.positions().filter((h) => h.wallet_pubkey === wallet)
      .map((h) => h.position_id);
  }
}

async function run(argv) {
  const [streamUrl, apiUrl, rpcUrl, key1, key2, watched1, watched2] = argv;
  const w1 = loadKeypair(key1);
  const w2 = loadKeypair(key2);
  const me = w1.publicKey.toBase58();
  const two = w2.publicKey.toBase58();
  const wallets = { [me]: w1, [two]: w2 };
  const api = ExitApiClient.withApiKey(API_KEY).withBaseUrl(apiUrl);
  for (const keypair of [w1, w2]) await api.registerWallet(proveOwnership(keypair));
  const session = await StreamSession.connect(new StreamClient(API_KEY).withEndpoint(streamUrl), {
    wallet_pubkeys: [me],
    strategy: QUIET,
    send_mode: "rpc",
    tip_lamports: 1000,
    watch_wallets: [{ pubkey: watched1,
      auto_buy: { wallet_pubkey: me, amount_quote_units: MIRROR_LAMPORTS } }],
    mirror_config: { max_positions_per_wallet: 0, cooldown_sec: 0, buy_slippage_bps: 1500 },
  });
  const d = new Driver(session, wallets, rpcUrl);
  const checks = {};
  const sender = session.sender();

  await d.pumpUntil("hello_ok", () => (frames.hello_ok ?? 0) >= 1);
  await d.pumpUntil("two positions, pnl, liquidity, ticks", () => d.openIds(me).length >= 2
    && d.of("pnl_update").length > 0 && d.of("trade_tick").length > 0
    && d.of("liquidity_snapshot").length > 0 && (frames.balance_update ?? 0) >= 2);
  const handle = session.positions()[0];
  checks.position_handle = {
    token_price_quote: handle.token_price_quote, market_cap_quote: handle.market_cap_quote,
    pool_liquidity_quote: handle.pool_liquidity_quote, token_decimals: handle.token_decimals,
    market_type: handle.market_type,
  };

  sender.ping(Date.now());
  await d.pumpUntil("pong", () => (frames.pong ?? 0) >= 1);

  const [first, second] = d.openIds(me).sort((a, b) => a - b);
  const byId = Object.fromEntries(session.positions().map((h) => [h.position_id, h]));
  session.requestExitSignal(byId[first], 700);
  await d.pumpUntil("request_exit_signal lands", () => d.landed(first) && d.closed(first));
  checks.requested_exit_reason = d.exits.filter((x) => x.position_id === first).map((x) => x.reason);

  session.close(byId[second]);
  await d.pumpUntil("close_position", () => d.closed(second) !== undefined);
  checks.close_reason = d.closed(second).message.reason;

  await d.pumpUntil("replacements", () => d.openIds(me).length >= 2);
  const third = Math.max(...d.openIds(me));
  sender.updatePositionStrategy(third, TRIGGER_HAPPY);
  await d.pumpUntil("update_position_strategy fires", () => d.landed(third) && d.closed(third));

  await d.pumpUntil("auto_buy mirror lands",
    () => d.mirrors.some((m) => m.watched === watched1 && m.signature));
  const mirrorMint = d.mirrors.find((m) => m.watched === watched1).mint;
  await d.pumpUntil("mirrored position opened", () => d.of("position_opened").some(
    (e) => e.message.mirror_source === watched1 && e.message.mint === mirrorMint));

  sender.updateWatchWallets([{ pubkey: watched2,
    auto_buy: { wallet_pubkey: me, amount_quote_units: MIRROR_LAMPORTS } }]);
  await d.pumpUntil("update_watch_wallets: new mirror",
    () => d.mirrors.some((m) => m.watched === watched2 && m.signature));

  sender.updateWallets([me, two]);
  await d.pumpUntil("update_wallets: second wallet's positions", () => d.openIds(two).length >= 1);

  const before = new Set(d.of("exit_signal_with_tx").map((e) => e.message.position_id));
  session.updateStrategy(TRIGGER_HAPPY);
  await d.pumpUntil("update_strategy fires on both wallets", () => {
    const fresh = d.of("exit_signal_with_tx").filter((e) => !before.has(e.message.position_id));
    const walletsHit = new Set(fresh.map((e) => e.message.wallet_pubkey));
    return walletsHit.has(me) && walletsHit.has(two)
      && d.exits.some((x) => x.signature && !before.has(x.position_id));
  });

  session.updateStrategy(QUIET, 1);
  await d.pumpUntil("in-flight exits settled", () => d.pending.size === 0);
  const since = d.exits.length;
  await d.pumpUntil("deadline timer requests an exit",
    () => d.exits.slice(since).some((x) => x.signature && x.reason === "manual"));
  checks.deadline_exit_reasons = d.exits.slice(since).map((x) => x.reason);

  await d.pumpUntil("every exit and mirror settled", () => d.pending.size === 0, 15000);
  session.close();
  return {
    frames, parse_failures: parseFailures, errors: d.errors, exits: d.exits,
    mirrors: d.mirrors, checks, confirmed_by_websocket: d.confirmedByWebsocket,
    signature_notifications: signatureNotifications,
  };
}

let report;
try {
  report = await run(process.argv.slice(2));
} catch (error) {
  report = { fatal: String(error?.stack ?? error), frames, parse_failures: parseFailures };
}
console.log(JSON.stringify(report));
process.exit(0);
