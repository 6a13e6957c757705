#pragma once
// SAGA_TEST_ASAN: defined to 1 when this test is built with AddressSanitizer (make test-asan), as
// the sagad and sagactl it starts are. GCC says so with __SANITIZE_ADDRESS__, clang (14 here) only
// through __has_feature.

#if defined(__SANITIZE_ADDRESS__)
#define SAGA_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SAGA_TEST_ASAN 1
#endif
#endif
