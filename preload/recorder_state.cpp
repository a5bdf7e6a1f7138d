// The recorder's process-wide and per-thread state (recorder_internal.h, thread_state.h), in one
// place so that every file of the recorder sees the same and none owns it. All of it is constant-
// initialised: the recorder may run before any constructor.
#include "arch/arch.h"
#include "recorder_internal.h"
#include "thread_state.h"

namespace dltrace::preload {

constinit thread_local ThreadState t_state{};

namespace recorder {

constinit std::atomic<int> g_state{kUninit};
constinit TraceWriter g_writer;
constinit std::atomic<uint32_t> g_stack_depth{32};
constinit bool g_live = false;
constinit pid_t g_pid = 0;
DLTRACE_LARGE_BSS constinit char g_pattern[4096];
constinit uint64_t g_buffer_size = 64ull << 20;
constinit const char* g_config_path = nullptr;
DLTRACE_LARGE_BSS constinit char g_self_real[4096];

}  // namespace recorder
}  // namespace dltrace::preload
