/*
 * The standalone model's command line: .npy files in, .npy files out.
 *
 * usage: snn_model [-t THREADS] [-r REPEAT] INPUT.npy... OUTPUT.npy...
 *        snn_model -i          (print the model's inputs, outputs and memory)
 *
 * One INPUT per model input and one OUTPUT per model output, in order. Each
 * input must be a C-order .npy of the input's dtype and shape. With -r, the
 * model runs REPEAT times more and the median time per run goes to stderr
 * as "median_ms <value>".
 *
 * Exit status: 0 on success, 2 for bad arguments or files, 4 when the model fails.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "snn_model.h"

#define EXIT_USAGE 2
#define EXIT_MODEL 4
#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_LEN 6
#define NPY_ALIGN 64
#define NPY_HEADER_MAX 65536
#define TEXT_MAX 1024
#define DECIMAL 10
#define MAX_DIMS 16
#define MS_PER_S 1e3
#define MS_PER_NS 1e-6

static void *alloc_or_die(size_t nbytes) {
  void *ptr = malloc(nbytes ? nbytes : 1);
  if (ptr == NULL) {
    fprintf(stderr, "snn_model: out of memory\n");
    exit(EXIT_USAGE);
  }
  return ptr;
}

/* The value text of `key` in a .npy header dict: from after "'key':" to the next ',' or '}' at depth 0. */
static int header_field(const char *header, const char *key, char *value, size_t size) {
  char quoted[TEXT_MAX];
  snprintf(quoted, sizeof(quoted), "'%s':", key);
  const char *at = strstr(header, quoted);
  if (at == NULL) return -1;
  at += strlen(quoted);
  while (*at == ' ') ++at;
  size_t used = 0;
  int depth = 0;
  for (; *at != '\0'; ++at) {
    if (*at == '(') ++depth;
    if (*at == ')') --depth;
    if (depth < 0) return -1;
    if (depth == 0 && (*at == ',' || *at == '}')) break;
    if (used + 1 < size) value[used++] = *at;
  }
  value[used] = '\0';
  return depth == 0 && *at != '\0' ? 0 : -1;
}

static int parse_shape(const char *text, int64_t *shape, int max_dims) {
  int ndim = 0;
  const char *at = strchr(text, '(');
  if (at == NULL) return -1;
  ++at;
  for (;;) {
    while (*at == ' ' || *at == ',') ++at;
    if (*at == ')' || *at == '\0') break;
    char *end = NULL;
    long long dim = strtoll(at, &end, DECIMAL);
    if (end == at || dim < 0 || ndim == max_dims) return -1;
    shape[ndim++] = dim;
    at = end;
  }
  return ndim;
}

static int read_npy(const char *path, const snn_tensor_info *info, void *data) {
  FILE *file = fopen(path, "rb");
  unsigned char prefix[NPY_MAGIC_LEN + 2];
  if (file == NULL) {
    fprintf(stderr, "snn_model: cannot open %s\n", path);
    return -1;
  }
  int status = -1;
  char *header = NULL;
  if (fread(prefix, 1, sizeof(prefix), file) != sizeof(prefix) ||
      memcmp(prefix, NPY_MAGIC, NPY_MAGIC_LEN) != 0) {
    fprintf(stderr, "snn_model: %s is not a .npy file\n", path);
    goto done;
  }
  unsigned char len_bytes[4] = {0};
  size_t len_size = prefix[NPY_MAGIC_LEN] == 1 ? 2 : 4;
  if (fread(len_bytes, 1, len_size, file) != len_size) goto truncated;
  size_t header_len = len_bytes[0] | (size_t)len_bytes[1] << 8 | (size_t)len_bytes[2] << 16 |
                      (size_t)len_bytes[3] << 24;
  if (header_len > NPY_HEADER_MAX) goto truncated;
  header = alloc_or_die(header_len + 1);
  if (fread(header, 1, header_len, file) != header_len) goto truncated;
  header[header_len] = '\0';
  char descr[TEXT_MAX] = {0}, order[TEXT_MAX] = {0}, shape_text[TEXT_MAX] = {0};
  int64_t shape[MAX_DIMS];
  if (header_field(header, "descr", descr, sizeof(descr)) != 0 ||
      header_field(header, "fortran_order", order, sizeof(order)) != 0 ||
      header_field(header, "shape", shape_text, sizeof(shape_text)) != 0) {
    fprintf(stderr, "snn_model: %s has a malformed .npy header\n", path);
    goto done;
  }
  char expected[TEXT_MAX];
  snprintf(expected, sizeof(expected), "'%s'", info->descr);
  if (strcmp(descr, expected) != 0 || strcmp(order, "False") != 0) {
    fprintf(stderr, "snn_model: %s holds dtype %s (fortran_order %s); input %s needs %s in C order\n",
            path, descr, order, info->name, expected);
    goto done;
  }
  int ndim = parse_shape(shape_text, shape, MAX_DIMS);
  int same = ndim == info->ndim;
  for (int d = 0; same && d < ndim; ++d) same = shape[d] == info->shape[d];
  if (!same) {
    fprintf(stderr, "snn_model: %s has shape %s; input %s needs (", path, shape_text, info->name);
    for (int d = 0; d < info->ndim; ++d) fprintf(stderr, "%s%lld", d ? ", " : "", (long long)info->shape[d]);
    fprintf(stderr, ")\n");
    goto done;
  }
  if (fread(data, 1, info->nbytes, file) != info->nbytes) goto truncated;
  if (fgetc(file) != EOF) {
    fprintf(stderr, "snn_model: %s holds more data than its header says\n", path);
    goto done;
  }
  status = 0;
  goto done;
truncated:
  fprintf(stderr, "snn_model: %s is truncated\n", path);
done:
  free(header);
  fclose(file);
  return status;
}

static int write_npy(const char *path, const snn_tensor_info *info, const void *data) {
  char header[TEXT_MAX], shape[TEXT_MAX] = "";
  for (int d = 0; d < info->ndim; ++d) {
    size_t used = strlen(shape);
    snprintf(shape + used, sizeof(shape) - used, "%lld,%s", (long long)info->shape[d],
             d + 1 < info->ndim ? " " : "");
  }
  int len = snprintf(header, sizeof(header), "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }",
                     info->descr, shape);
  /* magic (6) + version (2) + length (2) + header + padding + '\n' is a multiple of NPY_ALIGN */
  int total = NPY_MAGIC_LEN + 2 + 2 + len + 1;
  int pad = (NPY_ALIGN - total % NPY_ALIGN) % NPY_ALIGN;
  for (int i = 0; i < pad; ++i) header[len++] = ' ';
  header[len++] = '\n';
  FILE *file = fopen(path, "wb");
  if (file == NULL) {
    fprintf(stderr, "snn_model: cannot create %s\n", path);
    return -1;
  }
  unsigned char prefix[NPY_MAGIC_LEN + 4] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
                                             (unsigned char)(len & 0xff), (unsigned char)(len >> 8)};
  int ok = fwrite(prefix, 1, sizeof(prefix), file) == sizeof(prefix) &&
           fwrite(header, 1, (size_t)len, file) == (size_t)len &&
           fwrite(data, 1, info->nbytes, file) == info->nbytes;
  if (fclose(file) != 0 || !ok) {
    fprintf(stderr, "snn_model: cannot write %s\n", path);
    return -1;
  }
  return 0;
}

static void print_tensor(const char *role, const snn_tensor_info *info) {
  printf("%s %s %s (", role, info->name, info->descr);
  for (int d = 0; d < info->ndim; ++d) printf("%s%lld", d ? ", " : "", (long long)info->shape[d]);
  printf(")\n");
}

static int print_info(void) {
  for (int i = 0; i < snn_model_num_inputs; ++i) print_tensor("input", &snn_model_inputs[i]);
  for (int i = 0; i < snn_model_num_outputs; ++i) print_tensor("output", &snn_model_outputs[i]);
  printf("arena_bytes %zu\nweight_bytes %zu\n", snn_model_arena_bytes, snn_model_weight_bytes);
  return 0;
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * MS_PER_S + ts.tv_nsec * MS_PER_NS;
}

static int compare_doubles(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static int usage(void) {
  fprintf(stderr, "usage: snn_model [-t THREADS] [-r REPEAT] INPUT.npy... OUTPUT.npy...\n"
                  "       snn_model -i\n");
  return EXIT_USAGE;
}

int main(int argc, char **argv) {
  int threads = 1, repeat = 0, opt;
  while ((opt = getopt(argc, argv, "t:r:i")) != -1) {
    if (opt == 't') threads = atoi(optarg);
    else if (opt == 'r') repeat = atoi(optarg);
    else if (opt == 'i') return print_info();
    else return usage();
  }
  int count = snn_model_num_inputs + snn_model_num_outputs;
  if (argc - optind != count || threads < 1 || repeat < 0) {
    fprintf(stderr, "snn_model: the model takes %d input(s) and %d output(s)\n", snn_model_num_inputs,
            snn_model_num_outputs);
    return usage();
  }
  void **inputs = alloc_or_die(sizeof(void *) * (size_t)snn_model_num_inputs);
  void **outputs = alloc_or_die(sizeof(void *) * (size_t)snn_model_num_outputs);
  for (int i = 0; i < snn_model_num_inputs; ++i) {
    inputs[i] = alloc_or_die(snn_model_inputs[i].nbytes);
    if (read_npy(argv[optind + i], &snn_model_inputs[i], inputs[i]) != 0) return EXIT_USAGE;
  }
  for (int i = 0; i < snn_model_num_outputs; ++i) outputs[i] = alloc_or_die(snn_model_outputs[i].nbytes);
  if (snn_model_init(threads) != 0 || snn_model_run((const void *const *)inputs, outputs) != 0) {
    fprintf(stderr, "snn_model: %s\n", snn_model_error());
    return EXIT_MODEL;
  }
  if (repeat > 0) {
    double *times = alloc_or_die(sizeof(double) * (size_t)repeat);
    for (int r = 0; r < repeat; ++r) {
      double start = now_ms();
      if (snn_model_run((const void *const *)inputs, outputs) != 0) {
        fprintf(stderr, "snn_model: %s\n", snn_model_error());
        return EXIT_MODEL;
      }
      times[r] = now_ms() - start;
    }
    qsort(times, (size_t)repeat, sizeof(double), compare_doubles);
    fprintf(stderr, "median_ms %.6f\n", times[repeat / 2]);
  }
  snn_model_release();
  for (int i = 0; i < snn_model_num_outputs; ++i) {
    if (write_npy(argv[optind + snn_model_num_inputs + i], &snn_model_outputs[i], outputs[i]) != 0) {
      return EXIT_USAGE;
    }
  }
  return 0;
}
