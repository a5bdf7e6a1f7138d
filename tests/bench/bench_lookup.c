int bench_lookup_fn(int x) {
  return x + 1;
}
int bench_lookup_value = 1;
