/*
 * The few libtvm_ffi.so functions a compiled TVM kernel and the harness use.
 *
 * There is no ARMv7 wheel of apache-tvm-ffi, so the harness loads this small
 * library (RTLD_GLOBAL, before the kernel) in place of libtvm_ffi.so. Kernels
 * import only TVMFFIErrorSetRaisedFromCStrParts (argument checks); the harness
 * fetches the error back through TVMFFIErrorMoveFromRaised and frees it with
 * TVMFFIObjectDecRef. The error is a heap object laid out like tvm-ffi's: an
 * object header followed by a TVMFFIErrorCell.
 *
 * Errors live in one process-wide slot, not in thread-local storage: the
 * harness reads it once, after the kernel returns.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <tvm/ffi/c_api.h>

#define ERROR_TEXT_MAX 4096

typedef struct {
  TVMFFIObject header;
  TVMFFIErrorCell cell; /* must follow the header directly, as in tvm-ffi */
  char kind[ERROR_TEXT_MAX];
  char message[ERROR_TEXT_MAX];
} StubError;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static StubError *g_raised = NULL;

static void append(char *text, const char *part) {
  size_t used = strlen(text);
  if (part != NULL && used + 1 < ERROR_TEXT_MAX) strncat(text, part, ERROR_TEXT_MAX - 1 - used);
}

static void set_raised(StubError *error) {
  pthread_mutex_lock(&g_lock);
  free(g_raised);
  g_raised = error;
  pthread_mutex_unlock(&g_lock);
}

void TVMFFIErrorSetRaisedFromCStrParts(const char *kind, const char **message_parts,
                                       int32_t num_parts) {
  StubError *error = calloc(1, sizeof(StubError));
  if (error == NULL) return;
  error->header.type_index = kTVMFFIError;
  append(error->kind, kind);
  for (int32_t i = 0; i < num_parts; ++i) append(error->message, message_parts[i]);
  error->cell.kind = (TVMFFIByteArray){error->kind, strlen(error->kind)};
  error->cell.message = (TVMFFIByteArray){error->message, strlen(error->message)};
  set_raised(error);
}

void TVMFFIErrorSetRaisedFromCStr(const char *kind, const char *message) {
  TVMFFIErrorSetRaisedFromCStrParts(kind, &message, 1);
}

void TVMFFIErrorMoveFromRaised(TVMFFIObjectHandle *result) {
  pthread_mutex_lock(&g_lock);
  *result = g_raised;
  g_raised = NULL;
  pthread_mutex_unlock(&g_lock);
}

int TVMFFIObjectDecRef(TVMFFIObjectHandle obj) {
  free(obj); /* stub errors have a single owner */
  return 0;
}
