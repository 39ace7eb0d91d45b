/*
 * The little of TVM's runtime that compiled TVM kernels need, on libc and pthreads.
 *
 * A TVM 0.27 kernel object imports TVMFFIErrorSetRaisedFromCStrParts (its
 * argument checks report through it) and calls the parallel and workspace
 * back ends through function-pointer variables (__TVMBackendParallelLaunch,
 * ...), which the loader fills. This file provides both: a persistent pthread
 * pool for parallel loops, malloc'd workspaces, and one error slot.
 *
 * snn_runtime.c holds the pool, the workspaces and the back-end entry points;
 * snn_error.c the error slot and the kernel's FFI import. The standalone model
 * driver links both, statically, with the kernels. The qemu harness links
 * only snn_runtime.c (it exports it to a dlopen'd kernel) and takes the FFI
 * import from the FFI library it loads.
 */
#ifndef SNN_RUNTIME_H_
#define SNN_RUNTIME_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* From tvm/runtime/c_backend_api.h (a C++ header): the parallel environment. */
typedef struct {
  void *sync_handle;
  int32_t num_task;
} TVMParallelGroupEnv;

typedef int (*FTVMParallelLambda)(int task_id, TVMParallelGroupEnv *penv, void *cdata);

/* ---- snn_runtime.c ---- */

/* Start the pool: `num_threads` workers in all, the caller included (>= 1). 0 on success. */
int snn_runtime_start(int num_threads);

/* The pool's size (1 before snn_runtime_start). */
int snn_runtime_threads(void);

/* Stop and join the pool's threads (safe to call when not started). */
void snn_runtime_stop(void);

/* ---- snn_error.c ---- */

/* The last error a kernel or the driver raised, "" when none; cleared by snn_runtime_clear_error. */
const char *snn_runtime_last_error(void);
void snn_runtime_clear_error(void);

/* Record an error message (printf-style), as a kernel's failed check does. */
void snn_runtime_set_error(const char *format, ...);

/* The one FFI import of a kernel object. */
void TVMFFIErrorSetRaisedFromCStrParts(const char *kind, const char **message_parts,
                                       int32_t num_parts);

/* ---- snn_runtime.c ---- */

/* The TVM back end, as libtvm_runtime exports it. */
void *TVMBackendAllocWorkspace(int device_type, int device_id, uint64_t nbytes, int dtype_code_hint,
                               int dtype_bits_hint);
int TVMBackendFreeWorkspace(int device_type, int device_id, void *ptr);
int TVMBackendParallelLaunch(FTVMParallelLambda lambda, void *cdata, int num_task);
int TVMBackendParallelBarrier(int task_id, TVMParallelGroupEnv *penv);

#ifdef __cplusplus
}
#endif

#endif /* SNN_RUNTIME_H_ */
