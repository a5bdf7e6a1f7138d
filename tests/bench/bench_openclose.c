int bench_openclose_fn(int x) {
  return x + 2;
}
