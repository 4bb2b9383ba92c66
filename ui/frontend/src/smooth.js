// TensorBoard's debiased exponential moving average, with the same floating-point
// operations in the same order as trainboard.smooth (client/trainboard/smoothing.py),
// so that the browser draws exactly what the Python function returns:
//   last = last * w + (1 - w) * (y - y0)   over finite points only, from 0
//   shown = y0 + last / (1 - w^n)          n = finite points so far; w^n a product
// with y0 the first finite value (the same average, and a constant stays exactly
// constant). NaN and ±Inf pass through unsmoothed; w = 0 returns the raw values.
export function smooth(values, weight) {
  const out = Float64Array.from(values);
  if (!(weight > 0)) return out;
  let last = 0.0;
  let power = 1.0;
  let base = null;
  const rest = 1.0 - weight;
  for (let i = 0; i < out.length; i++) {
    const y = out[i];
    if (!Number.isFinite(y)) continue;
    if (base === null) base = y;
    last = last * weight + rest * (y - base);
    power = power * weight;
    out[i] = base + last / (1.0 - power);
  }
  return out;
}
