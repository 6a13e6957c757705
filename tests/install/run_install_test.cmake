# cmake -P script, the install test (tests/install/CMakeLists.txt): what a user
# with the installed package alone does.
#
#   1. install this build into a fresh prefix;
#   2. build examples/claims against that prefix only (find_package(saga) with
#      CMAKE_PREFIX_PATH) and run its tests (the scenario tests, claimsd and
#      the installed sagad listing the plugin's definition);
#   3. build the consumer project (consumer/) against the prefix: an engine
#      embedded with a shipped definition, and claims_driver, which runs a
#      claim under claimsd and under the installed `sagad --plugin libclaims.so`
#      over ZeroMQ (client and subscriber libraries) and reads it with the
#      installed sagactl (show, graph); and consumer_postgres, which links saga::postgres and
#      reports that no server is there.
#
# Inputs (-D): BUILD_DIR, CLAIMS_DIR, CONSUMER_DIR, WORK_DIR, CXX_COMPILER,
# LAUNCHER (the ccache program, or empty). The projects are built in Release with the same
# compiler as this build (a plugin must match sagad's standard library), through
# ccache when this build uses it: the prefix's path does not change between
# runs, so a second run compiles nothing again.
file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)
string(TIMESTAMP started "%s")

set(STEP_TEST "install test")
include(${CMAKE_CURRENT_LIST_DIR}/../support/script_step.cmake)

set(project_args -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=${CXX_COMPILER}
                 -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
if(LAUNCHER)
  list(APPEND project_args -DCMAKE_CXX_COMPILER_LAUNCHER=${LAUNCHER})
endif()

# Fails unless the project configured in `dir` found saga in the prefix.
function(expect_package_from_prefix dir)
  file(STRINGS ${dir}/CMakeCache.txt found REGEX "^saga_DIR:")
  if(NOT found MATCHES "=${prefix}/")
    message(FATAL_ERROR "install test: ${dir} found saga outside the installed prefix ${prefix}: ${found}")
  endif()
endfunction()

step("cmake --install into ${prefix}" ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})
foreach(installed bin/sagad bin/sagactl include/saga/server/server.hpp include/saga/plugin.hpp)
  if(NOT EXISTS ${prefix}/${installed})
    message(FATAL_ERROR "install test: ${installed} is not installed")
  endif()
endforeach()

set(claims ${WORK_DIR}/claims)
step("configuring examples/claims against the prefix" ${CMAKE_COMMAND} -S ${CLAIMS_DIR} -B ${claims} ${project_args})
expect_package_from_prefix(${claims})
step("building examples/claims" ${CMAKE_COMMAND} --build ${claims} -j2)
foreach(built claimsd libclaims.so claims_tests)
  if(NOT EXISTS ${claims}/${built})
    message(FATAL_ERROR "install test: examples/claims built no ${built}")
  endif()
endforeach()
step("examples/claims' tests" ${CMAKE_CTEST_COMMAND} --test-dir ${claims} --output-on-failure)
if(NOT step_out MATCHES "claims.sagad_plugin_lists_insurance_claim" OR NOT step_out MATCHES "100% tests passed")
  message(FATAL_ERROR "install test: examples/claims' tests did not all run (no installed sagad found?):\n${step_out}")
endif()

set(consumer ${WORK_DIR}/consumer)
step("configuring the consumer against the prefix" ${CMAKE_COMMAND} -S ${CONSUMER_DIR} -B ${consumer} ${project_args})
expect_package_from_prefix(${consumer})
step("building the consumer" ${CMAKE_COMMAND} --build ${consumer} -j2)

step("the consumer (engine embedded, order_lifecycle)" ${consumer}/consumer ${WORK_DIR}/consumer.db)
if(NOT step_out MATCHES "state=placed")
  message(FATAL_ERROR "install test: the consumer printed no state=placed:\n${step_out}")
endif()

# No server is there: the store's connection error shows it linked libpq and ran.
execute_process(COMMAND ${consumer}/consumer_postgres "host=${WORK_DIR}/no-such-socket-dir dbname=orders"
                OUTPUT_VARIABLE pg_out ERROR_VARIABLE pg_out RESULT_VARIABLE pg_rc)
if(NOT pg_rc EQUAL 1 OR NOT pg_out MATCHES "connect to PostgreSQL \\(host=[^ ]*/no-such-socket-dir port=")
  message(FATAL_ERROR "install test: consumer_postgres (rc ${pg_rc}) did not report the missing server:\n${pg_out}")
endif()

step("claims_driver (claimsd and sagad --plugin over ZeroMQ, sagactl show and graph)"
     ${consumer}/claims_driver --claimsd ${claims}/claimsd --plugin ${claims}/libclaims.so
     --sagad ${prefix}/bin/sagad --sagactl ${prefix}/bin/sagactl)
message(STATUS "${step_out}")

string(TIMESTAMP finished "%s")
math(EXPR secs "${finished} - ${started}")
message(STATUS "install test: everything held (${secs} s)")
