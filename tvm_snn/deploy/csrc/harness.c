/*
 * Run one TVM-compiled kernel (an exported .so) on tensors read from raw files.
 *
 * Built with a Debian cross gcc and run under qemu-user by tvm_snn.deploy.qemu.
 *
 * usage: harness [-t THREADS] [-f FFI_LIB] KERNEL_SO ENTRY ARG...
 *   ARG      = DIR:DTYPE:SHAPE:PATH, one per tensor parameter, in parameter order
 *   DIR      = i (read PATH before the call) or o (write PATH after the call)
 *   DTYPE    = DLPack code letter and bits: f32, i8, u8, i32, ...
 *   SHAPE    = dims joined by 'x' (2x3x4), or '-' for a 0-d tensor
 *   THREADS  = worker count for parallel loops launched with num_task = 0
 *   FFI_LIB  = a libtvm_ffi.so (for instance the aarch64 one from the PyPI
 *              wheel) or the harness's own ffi_stub.so; loaded RTLD_GLOBAL
 *              before the kernel so that it resolves the kernel's TVMFFI* imports.
 *
 * The kernel's packed function is `int __tvm_ffi_<ENTRY>(void *self,
 * const TVMFFIAny *args, int32_t num_args, TVMFFIAny *result)`; each argument
 * is a TVMFFIAny of type kTVMFFIDLTensorPtr pointing at a CPU DLTensor.
 *
 * The harness plays the part of libtvm_runtime with the standalone driver's
 * runtime (snn_runtime.c: a persistent pthread pool and malloc'd workspaces):
 * it exports the TVMBackend* functions (the executable is linked with
 * -rdynamic) and stores their addresses in the kernel's context pointers
 * (__TVMBackendParallelLaunch, ...), as tvm-ffi's library loader does when
 * the TVM runtime is present.
 *
 * Exit status: 0 on success, EXIT_USAGE for bad arguments or files,
 * EXIT_LOAD when a library or symbol is missing, EXIT_KERNEL when the kernel
 * returns an error (its message goes to stderr).
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tvm/ffi/c_api.h>

#include "snn_runtime.h"

#define EXIT_USAGE 2
#define EXIT_LOAD 3
#define EXIT_KERNEL 4

#define SYMBOL_PREFIX "__tvm_ffi_"
#define MAX_NAME 512
#define MAX_DIMS 8
#define BITS_PER_BYTE 8
#define DECIMAL 10
#define DEFAULT_THREADS 1

/* The error accessors of the loaded FFI library (real or stub). */
typedef void (*MoveFromRaisedFn)(TVMFFIObjectHandle *result);
typedef int (*DecRefFn)(TVMFFIObjectHandle obj);

typedef struct {
  int is_output;
  DLTensor tensor;
  int64_t shape[MAX_DIMS];
  size_t nbytes;
  const char *path;
} Arg;

/* Context pointers the kernel calls through, as tvm-ffi's loader fills them. */
static const struct {
  const char *name;
  void *value;
} kContextSymbols[] = {
    {"__TVMBackendAllocWorkspace", (void *)TVMBackendAllocWorkspace},
    {"__TVMBackendFreeWorkspace", (void *)TVMBackendFreeWorkspace},
    {"__TVMBackendParallelLaunch", (void *)TVMBackendParallelLaunch},
    {"__TVMBackendParallelBarrier", (void *)TVMBackendParallelBarrier},
};

/* ---- argument parsing ---- */

static int parse_dtype(const char *text, DLDataType *dtype) {
  char *end = NULL;
  long bits = strtol(text + 1, &end, DECIMAL);
  switch (text[0]) {
    case 'f': dtype->code = kDLFloat; break;
    case 'i': dtype->code = kDLInt; break;
    case 'u': dtype->code = kDLUInt; break;
    default: return -1;
  }
  if (end == text + 1 || *end != '\0' || bits <= 0 || bits % BITS_PER_BYTE != 0) return -1;
  dtype->bits = (uint8_t)bits;
  dtype->lanes = 1;
  return 0;
}

static int parse_shape(const char *text, Arg *arg) {
  int ndim = 0;
  if (strcmp(text, "-") == 0) return 0;
  while (*text != '\0') {
    char *end = NULL;
    long long dim = strtoll(text, &end, DECIMAL);
    if (end == text || dim < 0 || ndim == MAX_DIMS) return -1;
    arg->shape[ndim++] = dim;
    if (*end == 'x') ++end;
    else if (*end != '\0') return -1;
    text = end;
  }
  return ndim;
}

/* DIR:DTYPE:SHAPE:PATH; PATH may itself contain ':'. */
static int parse_arg(char *spec, Arg *arg) {
  char *fields[3];
  char *rest = spec;
  for (int i = 0; i < 3; ++i) {
    char *colon = strchr(rest, ':');
    if (colon == NULL) return -1;
    *colon = '\0';
    fields[i] = rest;
    rest = colon + 1;
  }
  if (strcmp(fields[0], "i") != 0 && strcmp(fields[0], "o") != 0) return -1;
  arg->is_output = fields[0][0] == 'o';
  arg->path = rest;
  memset(&arg->tensor, 0, sizeof(arg->tensor));
  if (parse_dtype(fields[1], &arg->tensor.dtype) != 0) return -1;
  int ndim = parse_shape(fields[2], arg);
  if (ndim < 0) return -1;
  arg->nbytes = arg->tensor.dtype.bits / BITS_PER_BYTE;
  for (int d = 0; d < ndim; ++d) arg->nbytes *= (size_t)arg->shape[d];
  arg->tensor.ndim = ndim;
  arg->tensor.shape = arg->shape;
  arg->tensor.device = (DLDevice){kDLCPU, 0};
  return 0;
}

/* ---- tensor files ---- */

static int read_tensor(Arg *arg) {
  FILE *file = fopen(arg->path, "rb");
  if (file == NULL) {
    fprintf(stderr, "harness: cannot open %s: %s\n", arg->path, strerror(errno));
    return -1;
  }
  size_t got = fread(arg->tensor.data, 1, arg->nbytes, file);
  int extra = fgetc(file) != EOF;
  fclose(file);
  if (got != arg->nbytes || extra) {
    fprintf(stderr, "harness: %s does not hold exactly %zu bytes\n", arg->path, arg->nbytes);
    return -1;
  }
  return 0;
}

static int write_tensor(const Arg *arg) {
  FILE *file = fopen(arg->path, "wb");
  if (file == NULL) {
    fprintf(stderr, "harness: cannot create %s: %s\n", arg->path, strerror(errno));
    return -1;
  }
  size_t put = fwrite(arg->tensor.data, 1, arg->nbytes, file);
  int closed = fclose(file);
  if (put != arg->nbytes || closed != 0) {
    fprintf(stderr, "harness: cannot write %s\n", arg->path);
    return -1;
  }
  return 0;
}

static int prepare_tensors(Arg *args, int count) {
  for (int i = 0; i < count; ++i) {
    args[i].tensor.data = TVMBackendAllocWorkspace(kDLCPU, 0, args[i].nbytes, 0, 0);
    if (args[i].tensor.data == NULL) {
      fprintf(stderr, "harness: out of memory for argument %d\n", i);
      return -1;
    }
    memset(args[i].tensor.data, 0, args[i].nbytes);
    if (!args[i].is_output && read_tensor(&args[i]) != 0) return -1;
  }
  return 0;
}

/* ---- loading and calling ---- */

static void *open_global(const char *path) {
  void *handle = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
  if (handle == NULL) fprintf(stderr, "harness: dlopen failed: %s\n", dlerror());
  return handle;
}

static void install_context_symbols(void *kernel) {
  size_t count = sizeof(kContextSymbols) / sizeof(kContextSymbols[0]);
  for (size_t i = 0; i < count; ++i) {
    void **slot = (void **)dlsym(kernel, kContextSymbols[i].name);
    if (slot != NULL) *slot = kContextSymbols[i].value;
  }
}

/* Print the error the kernel raised through the FFI library, if it can be fetched. */
static void report_raised_error(void *ffi) {
  MoveFromRaisedFn move = ffi ? (MoveFromRaisedFn)dlsym(ffi, "TVMFFIErrorMoveFromRaised") : NULL;
  DecRefFn dec_ref = ffi ? (DecRefFn)dlsym(ffi, "TVMFFIObjectDecRef") : NULL;
  TVMFFIObjectHandle error = NULL;
  if (move == NULL) return;
  move(&error);
  if (error == NULL) return;
  /* The error cell follows the object header (TVMFFIErrorGetCellPtr, C++ only). */
  const TVMFFIErrorCell *cell = (const TVMFFIErrorCell *)((char *)error + sizeof(TVMFFIObject));
  fprintf(stderr, "%.*s: %.*s\n", (int)cell->kind.size, cell->kind.data, (int)cell->message.size,
          cell->message.data);
  if (dec_ref != NULL) dec_ref(error);
}

static int call_kernel(void *kernel, void *ffi, const char *entry, Arg *args, int count) {
  char symbol[MAX_NAME];
  snprintf(symbol, sizeof(symbol), "%s%s", SYMBOL_PREFIX, entry);
  TVMFFISafeCallType func = (TVMFFISafeCallType)dlsym(kernel, symbol);
  if (func == NULL) {
    fprintf(stderr, "harness: the kernel library has no symbol %s\n", symbol);
    return EXIT_LOAD;
  }
  TVMFFIAny *packed = calloc((size_t)count + 1, sizeof(TVMFFIAny));
  for (int i = 0; i < count; ++i) {
    packed[i].type_index = kTVMFFIDLTensorPtr;
    packed[i].v_ptr = &args[i].tensor;
  }
  TVMFFIAny result;
  memset(&result, 0, sizeof(result));
  result.type_index = kTVMFFINone;
  int status = func(NULL, packed, count, &result);
  free(packed);
  if (status != 0) {
    fprintf(stderr, "harness: %s returned %d\n", symbol, status);
    report_raised_error(ffi);
    return EXIT_KERNEL;
  }
  return 0;
}

static int usage(void) {
  fprintf(stderr, "usage: harness [-t THREADS] [-f FFI_LIB] KERNEL_SO ENTRY DIR:DTYPE:SHAPE:PATH...\n");
  return EXIT_USAGE;
}

int main(int argc, char **argv) {
  const char *ffi_path = NULL;
  int num_threads = DEFAULT_THREADS;
  int opt;
  while ((opt = getopt(argc, argv, "t:f:")) != -1) {
    if (opt == 't') num_threads = atoi(optarg);
    else if (opt == 'f') ffi_path = optarg;
    else return usage();
  }
  if (argc - optind < 2 || num_threads <= 0) return usage();
  const char *kernel_path = argv[optind];
  const char *entry = argv[optind + 1];
  int count = argc - optind - 2;
  Arg *args = calloc((size_t)count + 1, sizeof(Arg));
  for (int i = 0; i < count; ++i) {
    if (parse_arg(argv[optind + 2 + i], &args[i]) != 0) {
      fprintf(stderr, "harness: bad argument %d: expected DIR:DTYPE:SHAPE:PATH\n", i);
      return EXIT_USAGE;
    }
  }
  if (prepare_tensors(args, count) != 0) return EXIT_USAGE;
  if (snn_runtime_start(num_threads) != 0) {
    fprintf(stderr, "harness: cannot start %d threads\n", num_threads);
    return EXIT_USAGE;
  }
  void *ffi = ffi_path ? open_global(ffi_path) : NULL;
  if (ffi_path != NULL && ffi == NULL) return EXIT_LOAD;
  void *kernel = open_global(kernel_path);
  if (kernel == NULL) return EXIT_LOAD;
  install_context_symbols(kernel);
  int status = call_kernel(kernel, ffi, entry, args, count);
  for (int i = 0; status == 0 && i < count; ++i) {
    if (args[i].is_output && write_tensor(&args[i]) != 0) status = EXIT_USAGE;
  }
  snn_runtime_stop();
  return status;
}
