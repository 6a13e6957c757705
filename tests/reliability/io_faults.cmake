# The I/O-fault tests (issue 7, section 2): sagad's loop in-process over a fault-injecting
# SQLite VFS, and a really full database (PRAGMA max_page_count).
#
# include()d from a CMakeLists.txt after the saga targets exist (saga::server,
# saga::sqlite, saga::zmq, saga::definitions) and after find_package(doctest) /
# include(doctest) and the saga_test_main object library of tests/CMakeLists.txt.
#
# One executable, saga-io-faults: ctest runs its TEST_CASEs (suite "io_faults")
# with the default cap N <= 8; `SAGA_IO_FAULT_MAX_N=64 saga-io-faults` is the full run.
set(SAGA_IO_FAULTS_DIR ${CMAKE_CURRENT_LIST_DIR})

if(NOT TARGET doctest::doctest)
  find_package(doctest REQUIRED CONFIG)
endif()
include(doctest)
find_package(SQLite3 REQUIRED)
find_package(Threads REQUIRED)
if(NOT TARGET saga_test_main)
  add_library(saga_test_main OBJECT ${SAGA_IO_FAULTS_DIR}/../support/doctest_main.cpp)
  target_link_libraries(saga_test_main PUBLIC doctest::doctest)
endif()

add_executable(saga-io-faults
  ${SAGA_IO_FAULTS_DIR}/io_fault_vfs.cpp
  ${SAGA_IO_FAULTS_DIR}/io_fault_test.cpp
  $<TARGET_OBJECTS:saga_test_main>)
target_include_directories(saga-io-faults PRIVATE ${SAGA_IO_FAULTS_DIR}/..)
target_link_libraries(saga-io-faults PRIVATE
  doctest::doctest saga::server saga::sqlite saga::zmq saga::definitions SQLite::SQLite3 Threads::Threads)
target_compile_features(saga-io-faults PRIVATE cxx_std_20)
saga_warnings(saga-io-faults)
doctest_discover_tests(saga-io-faults
  TEST_PREFIX "io_faults."
  WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}
  PROPERTIES TIMEOUT 180)
