/* OpenBLAS sgemm peak on this machine: C = A*B, square N x N fp32, repeated.
 * usage: sgemm_peak N REPS THREADS
 * Prints one line of JSON: {"n","reps","threads","gflops","best_gflops","corename","config"}.
 * Built by bench/host_step_time.py with: cc -O2 sgemm_peak.c -lopenblas */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

extern void openblas_set_num_threads(int);
extern char *openblas_get_corename(void);
extern char *openblas_get_config(void);

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 2048;
  int reps = argc > 2 ? atoi(argv[2]) : 10;
  int threads = argc > 3 ? atoi(argv[3]) : 2;
  if (n <= 0 || reps <= 0 || threads <= 0) {
    fprintf(stderr, "usage: %s N REPS THREADS\n", argv[0]);
    return 2;
  }
  openblas_set_num_threads(threads);
  size_t nn = (size_t)n * n;
  float *a = malloc(nn * sizeof(float)), *b = malloc(nn * sizeof(float)),
        *c = malloc(nn * sizeof(float));
  if (!a || !b || !c) return 1;
  for (size_t i = 0; i < nn; ++i) {
    a[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
    b[i] = (float)((i * 40503u) % 1000) * 1e-3f - 0.5f;
    c[i] = 0.0f;
  }
  /* warmup (thread pool start, page faults) */
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
  double flop = 2.0 * n * (double)n * n, best = 1e30, t0 = now();
  for (int r = 0; r < reps; ++r) {
    double s = now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c,
                n);
    double e = now() - s;
    if (e < best) best = e;
  }
  double total = now() - t0;
  printf("{\"n\": %d, \"reps\": %d, \"threads\": %d, \"gflops\": %.2f, \"best_gflops\": %.2f, "
         "\"corename\": \"%s\", \"config\": \"%s\", \"check\": %g}\n",
         n, reps, threads, flop * reps / total * 1e-9, flop / best * 1e-9,
         openblas_get_corename(), openblas_get_config(), (double)c[nn / 2]);
  free(a);
  free(b);
  free(c);
  return 0;
}
