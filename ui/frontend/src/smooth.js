// TensorBoard's debiased exponential moving average, with the same floating-point
// operations in the same order as trainboard.smooth (client/trainboard/smoothing.py),
// so that the browser draws exactly what the Python function returns:
//   last = last * w + (1 - w) * y      over finite points only, from 0
//   shown = last / (1 - w^n)           n = finite points so far; w^n kept as a product
// NaN and ±Inf pass through unsmoothed; w = 0 returns the raw values.
export function smooth(values, weight) {
  const out = Float64Array.from(values);
  if (!(weight > 0)) return out;
  let last = 0.0;
  let power = 1.0;
  const rest = 1.0 - weight;
  for (let i = 0; i < out.length; i++) {
    const y = out[i];
    if (!Number.isFinite(y)) continue;
    last = last * weight + rest * y;
    power = power * weight;
    out[i] = last / (1.0 - power);
  }
  return out;
}
