/*
 * One process-wide error slot: what a kernel's failed check raises through
 * TVMFFIErrorSetRaisedFromCStrParts, or what the driver records.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "snn_runtime.h"

#define SNN_ERROR_MAX 4096

static pthread_mutex_t g_error_lock = PTHREAD_MUTEX_INITIALIZER;
static char g_error[SNN_ERROR_MAX];

/* Append `part` to the slot, cut to fit. */
static void append(const char *part) {
  if (part == NULL) return;
  size_t used = strlen(g_error);
  size_t room = SNN_ERROR_MAX - 1 - used;
  size_t length = strlen(part);
  if (length > room) length = room;
  memcpy(g_error + used, part, length);
  g_error[used + length] = '\0';
}

void TVMFFIErrorSetRaisedFromCStrParts(const char *kind, const char **message_parts,
                                       int32_t num_parts) {
  pthread_mutex_lock(&g_error_lock);
  g_error[0] = '\0';
  append(kind);
  append(": ");
  for (int32_t i = 0; i < num_parts; ++i) append(message_parts[i]);
  pthread_mutex_unlock(&g_error_lock);
}

void snn_runtime_set_error(const char *format, ...) {
  char text[SNN_ERROR_MAX];
  va_list args;
  va_start(args, format);
  vsnprintf(text, sizeof(text), format, args);
  va_end(args);
  pthread_mutex_lock(&g_error_lock);
  g_error[0] = '\0';
  append(text);
  pthread_mutex_unlock(&g_error_lock);
}

const char *snn_runtime_last_error(void) { return g_error; }

void snn_runtime_clear_error(void) {
  pthread_mutex_lock(&g_error_lock);
  g_error[0] = '\0';
  pthread_mutex_unlock(&g_error_lock);
}
