// Amounts are decimal strings with 7 places ("12.5000000"); arithmetic is on BigInt stroops, never floats.
const SCALE = 10_000_000n;

export function stroops(amount) {
  const [whole, frac = ""] = String(amount).trim().replace(/^-/, "").split(".");
  const value = BigInt(whole || "0") * SCALE + BigInt((frac + "0000000").slice(0, 7));
  return String(amount).trim().startsWith("-") ? -value : value;
}

export function format(value) {
  const sign = value < 0n ? "-" : "";
  const abs = value < 0n ? -value : value;
  return `${sign}${abs / SCALE}.${String(abs % SCALE).padStart(7, "0")}`;
}

// Whole seconds a balance pays for at a price per second.
export function runway(balance, pricePerSecond) {
  const price = stroops(pricePerSecond);
  return price > 0n ? Number(stroops(balance) / price) : Infinity;
}

export function duration(seconds) {
  if (!Number.isFinite(seconds)) return "—";
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return h ? `${h}:${String(m).padStart(2, "0")}:${String(r).padStart(2, "0")}` : `${m}:${String(r).padStart(2, "0")}`;
}
