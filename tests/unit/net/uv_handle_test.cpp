#include "net/uv_handle.h"

#include <memory>

#include <doctest/doctest.h>
#include <uv.h>

#include "net/buffer_pool.h"

using tunsocks::net::BufferPool;
using tunsocks::net::PooledBuffer;
using tunsocks::net::UvHandle;

namespace {

struct Loop {
  uv_loop_t loop{};
  Loop() { REQUIRE(uv_loop_init(&loop) == 0); }
  ~Loop() {
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&loop) == 0);
  }
};

void count_close(void* context) {
  ++*static_cast<int*>(context);
}

}  // namespace

TEST_CASE("handle_close_is_idempotent_and_reports_once") {
  Loop l;
  int closed = 0;
  UvHandle<uv_timer_t> timer;
  REQUIRE(timer.init([&](uv_timer_t* t) { return uv_timer_init(&l.loop, t); }) == 0);
  CHECK(timer.is_open());
  timer.close(&count_close, &closed);
  timer.close(&count_close, &closed);
  CHECK(!timer.is_open());
  CHECK(timer.get() == nullptr);
  CHECK(closed == 0);  // only from the close callback, on the next loop iteration
  uv_run(&l.loop, UV_RUN_DEFAULT);
  CHECK(closed == 1);
}

TEST_CASE("handle_owner_destroyed_before_close_callback") {
  // The owner goes away at once; the memory waits for libuv's close callback (ASan checks).
  Loop l;
  auto owner = std::make_unique<UvHandle<uv_tcp_t>>();
  REQUIRE(owner->init([&](uv_tcp_t* t) { return uv_tcp_init(&l.loop, t); }) == 0);
  owner.reset();
}

TEST_CASE("handle_failed_init_holds_nothing") {
  Loop l;
  UvHandle<uv_tcp_t> tcp;
  // AF_UNIX is not a family uv_tcp_init_ex accepts.
  int rc = tcp.init([&](uv_tcp_t* t) { return uv_tcp_init_ex(&l.loop, t, AF_UNIX); });
  CHECK(rc < 0);
  CHECK(!tcp.is_open());
}

TEST_CASE("handle_close_reset_on_unconnected_tcp") {
  Loop l;
  int closed = 0;
  UvHandle<uv_tcp_t> tcp;
  REQUIRE(tcp.init([&](uv_tcp_t* t) { return uv_tcp_init(&l.loop, t); }) == 0);
  tcp.close_reset(&count_close, &closed);
  uv_run(&l.loop, UV_RUN_DEFAULT);
  CHECK(closed == 1);
}

TEST_CASE("uv_error_names") {
  CHECK(tunsocks::net::uv_error_name(UV_ECONNREFUSED) == "ECONNREFUSED");
  CHECK(tunsocks::net::UvError{UV_ETIMEDOUT}.message() == "connection timed out");
  CHECK(!tunsocks::net::uv_error_name(-123456).empty());
}

TEST_CASE("buffer_pool_reuses_blocks_and_bounds_idle") {
  BufferPool pool(1024, 2);
  char* a = pool.acquire();
  char* b = pool.acquire();
  char* c = pool.acquire();
  CHECK(pool.outstanding() == 3);
  pool.release(a);
  pool.release(b);
  pool.release(c);  // beyond max idle: freed
  CHECK(pool.outstanding() == 0);
  CHECK(pool.idle() == 2);
  char* again = pool.acquire();
  CHECK(again == b);  // LIFO: the warmest block first
  {
    PooledBuffer owned(pool, again);
    PooledBuffer moved(std::move(owned));
    CHECK(!owned);
    CHECK(moved.data() == again);
  }
  CHECK(pool.outstanding() == 0);
  pool.release(nullptr);
  CHECK(pool.outstanding() == 0);
}
