/*
 * A persistent pthread pool for TVM's parallel loops, and malloc'd workspaces.
 *
 * A parallel loop is launched once per kernel call, many times per model
 * run, so the pool keeps its threads: the caller runs task 0, the workers
 * the others. A worker spins on the launch counter for a while, then sleeps
 * on a condition variable; the caller spins until all tasks are done.
 */
#include "snn_runtime.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#define SNN_MAX_THREADS 64
#define SNN_ALIGNMENT 64 /* TVM assumes 64-byte aligned buffers */
#define SNN_SPIN_LIMIT 200000

typedef struct {
  FTVMParallelLambda lambda;
  void *cdata;
  TVMParallelGroupEnv env;
} Job;

static pthread_t g_workers[SNN_MAX_THREADS];
static int g_size = 1; /* threads in all, the caller included */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_wake = PTHREAD_COND_INITIALIZER;
static pthread_barrier_t g_barrier;
static Job g_job;
static atomic_uint g_generation;
static atomic_int g_pending;
static atomic_int g_failed;
static atomic_int g_stopping;
static _Thread_local int t_in_task; /* a nested launch runs serially */

static int run_one(const Job *job, int task_id) {
  t_in_task = 1;
  int status = job->lambda(task_id, (TVMParallelGroupEnv *)&job->env, job->cdata);
  t_in_task = 0;
  return status;
}

static unsigned wait_for_launch(unsigned seen) {
  for (long spin = 0; spin < SNN_SPIN_LIMIT; ++spin) {
    unsigned now = atomic_load_explicit(&g_generation, memory_order_acquire);
    if (now != seen) return now;
  }
  pthread_mutex_lock(&g_lock);
  unsigned now;
  while ((now = atomic_load_explicit(&g_generation, memory_order_acquire)) == seen) {
    pthread_cond_wait(&g_wake, &g_lock);
  }
  pthread_mutex_unlock(&g_lock);
  return now;
}

static void *worker(void *raw) {
  int task_id = (int)(intptr_t)raw;
  unsigned seen = 0;
  for (;;) {
    seen = wait_for_launch(seen);
    if (atomic_load(&g_stopping)) return NULL;
    if (task_id < g_job.env.num_task && run_one(&g_job, task_id) != 0) {
      atomic_store(&g_failed, 1);
    }
    atomic_fetch_sub_explicit(&g_pending, 1, memory_order_release);
  }
}

int snn_runtime_start(int num_threads) {
  if (num_threads < 1 || num_threads > SNN_MAX_THREADS || g_size != 1) return -1;
  atomic_store(&g_stopping, 0);
  for (int i = 1; i < num_threads; ++i) {
    if (pthread_create(&g_workers[i], NULL, worker, (void *)(intptr_t)i) != 0) {
      g_size = i;
      snn_runtime_stop();
      return -1;
    }
    g_size = i + 1;
  }
  return 0;
}

int snn_runtime_threads(void) { return g_size; }

static void launch(void) {
  pthread_mutex_lock(&g_lock);
  atomic_fetch_add_explicit(&g_generation, 1, memory_order_release);
  pthread_cond_broadcast(&g_wake);
  pthread_mutex_unlock(&g_lock);
}

void snn_runtime_stop(void) {
  if (g_size == 1) return;
  atomic_store(&g_stopping, 1);
  launch();
  for (int i = 1; i < g_size; ++i) pthread_join(g_workers[i], NULL);
  g_size = 1;
}

void *TVMBackendAllocWorkspace(int device_type, int device_id, uint64_t nbytes, int dtype_code_hint,
                               int dtype_bits_hint) {
  void *ptr = NULL;
  (void)device_type, (void)device_id, (void)dtype_code_hint, (void)dtype_bits_hint;
  if (posix_memalign(&ptr, SNN_ALIGNMENT, nbytes ? (size_t)nbytes : 1) != 0) return NULL;
  return ptr;
}

int TVMBackendFreeWorkspace(int device_type, int device_id, void *ptr) {
  (void)device_type, (void)device_id;
  free(ptr);
  return 0;
}

/* Run `num_task` tasks (the whole pool when 0, at most the pool): task 0 on the caller. */
int TVMBackendParallelLaunch(FTVMParallelLambda lambda, void *cdata, int num_task) {
  int count = num_task > 0 && num_task < g_size ? num_task : g_size;
  if (t_in_task || count == 1) {
    Job serial = {lambda, cdata, {NULL, 1}};
    return run_one(&serial, 0) == 0 ? 0 : -1;
  }
  if (pthread_barrier_init(&g_barrier, NULL, (unsigned)count) != 0) return -1;
  g_job = (Job){lambda, cdata, {&g_barrier, count}};
  atomic_store(&g_failed, 0);
  atomic_store_explicit(&g_pending, g_size - 1, memory_order_release);
  launch();
  int status = run_one(&g_job, 0);
  while (atomic_load_explicit(&g_pending, memory_order_acquire) > 0) sched_yield();
  pthread_barrier_destroy(&g_barrier);
  return status == 0 && !atomic_load(&g_failed) ? 0 : -1;
}

int TVMBackendParallelBarrier(int task_id, TVMParallelGroupEnv *penv) {
  (void)task_id;
  int status = pthread_barrier_wait((pthread_barrier_t *)penv->sync_handle);
  return status == 0 || status == PTHREAD_BARRIER_SERIAL_THREAD ? 0 : -1;
}
