/*
 * The C API of a standalone tvm-snn model (written by `tvm-snn compile --standalone`).
 *
 * The model's kernels, its weights and a static arena for its activations are
 * linked into the program; it needs libc and pthreads, nothing of TVM.
 *
 *   if (snn_model_init(2) != 0) { puts(snn_model_error()); ... }
 *   const void *in[] = {image};  void *out[] = {logits};
 *   if (snn_model_run(in, out) != 0) { puts(snn_model_error()); ... }
 *   snn_model_release();
 *
 * Inputs and outputs are C-order arrays of the shapes and dtypes that
 * snn_model_inputs / snn_model_outputs list, at any address. A model is one
 * static object: do not run it from two threads at once.
 */
#ifndef SNN_MODEL_H_
#define SNN_MODEL_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  const char *name;
  const char *descr; /* NumPy's dtype string: "<f4", "|i1", "<i4", ... */
  int ndim;
  const int64_t *shape;
  size_t nbytes;
} snn_tensor_info;

extern const int snn_model_num_inputs;
extern const int snn_model_num_outputs;
extern const snn_tensor_info snn_model_inputs[];
extern const snn_tensor_info snn_model_outputs[];
extern const size_t snn_model_arena_bytes;   /* the planned activation memory */
extern const size_t snn_model_weight_bytes;  /* the linked-in constants */

/* Start `num_threads` threads (the caller included) and bind the buffers. 0 on success. */
int snn_model_init(int num_threads);

/* Run the model once. 0 on success; otherwise snn_model_error() says which kernel failed and why. */
int snn_model_run(const void *const *inputs, void *const *outputs);

/* Stop the threads. */
void snn_model_release(void);

/* The last error, "" when none. */
const char *snn_model_error(void);

#ifdef __cplusplus
}
#endif

#endif /* SNN_MODEL_H_ */
