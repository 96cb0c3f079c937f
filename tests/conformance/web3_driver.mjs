// @solana/web3.js against the simulator's RPC, with its defaults: the websocket URL is
// derived from the RPC URL (port + 1). Rent, fee, version, airdrop + confirm,
// sendAndConfirmTransaction, onSignature and getTransaction. Prints one JSON line.
//
// Usage: node web3_driver.mjs RPC_URL

import bs58 from "bs58";
import {
  Connection,
  Keypair,
  LAMPORTS_PER_SOL,
  SystemProgram,
  Transaction,
  sendAndConfirmTransaction,
} from "@solana/web3.js";

const TOKEN_ACCOUNT_SIZE = 165;
const EXPECTED_RENT = (128 + TOKEN_ACCOUNT_SIZE) * 3480 * 2; // lamports/byte-year x 2 years

function withTimeout(promise, ms, what) {
  return Promise.race([promise, new Promise((_, reject) =>
    setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms))]);
}

async function run(rpcUrl) {
  const connection = new Connection(rpcUrl, "confirmed");
  const payer = Keypair.generate();
  const dest = Keypair.generate().publicKey;
  const report = { ws_url: connection._rpcWsEndpoint, expected_rent: EXPECTED_RENT };

  report.rent = await connection.getMinimumBalanceForRentExemption(TOKEN_ACCOUNT_SIZE);
  report.version = (await connection.getVersion())["solana-core"];

  const airdrop = await connection.requestAirdrop(payer.publicKey, 2 * LAMPORTS_PER_SOL);
  const latest = await connection.getLatestBlockhash();
  await withTimeout(connection.confirmTransaction({ signature: airdrop, ...latest }),
    10000, "confirm airdrop");
  report.airdrop_balance = await connection.getBalance(payer.publicKey);

  const transfer = new Transaction().add(SystemProgram.transfer({
    fromPubkey: payer.publicKey, toPubkey: dest, lamports: 1_000_000 }));
  transfer.recentBlockhash = (await connection.getLatestBlockhash()).blockhash;
  transfer.feePayer = payer.publicKey;
  report.fee = (await connection.getFeeForMessage(transfer.compileMessage())).value;

  const signature = await withTimeout(
    sendAndConfirmTransaction(connection, transfer, [payer]), 10000, "sendAndConfirmTransaction");
  report.transfer_balance = await connection.getBalance(dest);

  const found = await connection.getTransaction(signature,
    { commitment: "confirmed", maxSupportedTransactionVersion: 0 });
  report.transaction_fee = found?.meta?.fee;
  report.transaction_err = found?.meta?.err ?? null;
  const parsed = await connection.getParsedTransaction(signature,
    { commitment: "confirmed", maxSupportedTransactionVersion: 0 });
  const keys = parsed?.transaction.message.accountKeys ?? [];
  report.parsed_keys = keys.map((k) => [k.pubkey.toBase58(), k.signer, k.writable]);
  report.payer = payer.publicKey.toBase58();
  report.dest = dest.toBase58();

  // onSignature: the websocket alone must deliver the confirmation.
  const second = new Transaction().add(SystemProgram.transfer({
    fromPubkey: payer.publicKey, toPubkey: dest, lamports: 1 }));
  second.recentBlockhash = (await connection.getLatestBlockhash()).blockhash;
  second.feePayer = payer.publicKey;
  second.sign(payer);
  const heard = new Promise((resolve) => {
    connection.onSignature(bs58.encode(second.signature), (result) => resolve(result), "confirmed");
  });
  await connection.sendRawTransaction(second.serialize());
  report.on_signature = await withTimeout(heard, 10000, "onSignature");
  return report;
}

let report;
try {
  report = await run(process.argv[2]);
} catch (error) {
  report = { fatal: String(error?.stack ?? error) };
}
console.log(JSON.stringify(report));
process.exit(0);
