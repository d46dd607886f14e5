# C unit tests (one ctest entry per case, label "c") and the busted specs
# under plain luajit and under the cachert executable (label "lua").
# Included only with CACHERT_BUILD_TESTS=ON: the tools below come from the
# test packages (`make deps-test`), which a plain build does not need.
# Every entry has a TIMEOUT sized to it, so a hang fails instead of waiting
# for ctest's default of 1500 s.

# cachert_require_tool(<var> <program> <Debian package>): find_program, or
# stop with a message naming the package to install (from TEST_DEBS).
function(cachert_require_tool var name package)
    find_program(${var} ${name})
    if(NOT ${var})
        message(FATAL_ERROR
            "CACHERT_BUILD_TESTS=ON needs '${name}' (Debian package ${package}), "
            "which was not found. Install the test packages with `make deps-test`, "
            "or configure with -DCACHERT_BUILD_TESTS=OFF to build without tests.")
    endif()
endfunction()

# add_c_test(<concept> <sources...> LIBS <libs...> [LABELS <labels...>]
#            [REDIS_CASES <names...>]):
# spec/c/test_<concept>.c; every TEST_CASE(name) in it becomes the ctest
# entry c.<concept>.<name>, labelled LABELS (default "c"; the Redis tests
# add "redis": they start redis-server, so `ctest -LE redis` skips them).
# REDIS_CASES names the cases of an otherwise unit-level binary that start
# servers (a whole Redis Cluster): they get the label redis as well and
# TIMEOUT 120, and the valgrind entry runs only the other cases.
function(add_c_test concept)
    cmake_parse_arguments(T "" "" "LIBS;LABELS;REDIS_CASES" ${ARGN})
    if(NOT T_LABELS)
        set(T_LABELS c)
    endif()
    set(src ${PROJECT_SOURCE_DIR}/spec/c/test_${concept}.c)
    add_executable(test_${concept} ${src} ${T_UNPARSED_ARGUMENTS})
    target_include_directories(test_${concept} PRIVATE src spec/c)
    target_link_libraries(test_${concept} PRIVATE ${T_LIBS} cachert_options)
    set(unit_cases "")
    file(STRINGS ${src} lines REGEX "TEST_CASE\\([a-z0-9_]+\\)")
    foreach(line ${lines})
        string(REGEX MATCHALL "TEST_CASE\\(([a-z0-9_]+)\\)" cases "${line}")
        foreach(c ${cases})
            string(REGEX REPLACE "TEST_CASE\\(([a-z0-9_]+)\\)" "\\1" name "${c}")
            add_test(NAME c.${concept}.${name} COMMAND test_${concept} ${name})
            if(name IN_LIST T_REDIS_CASES)
                set_tests_properties(c.${concept}.${name} PROPERTIES
                                     LABELS "${T_LABELS};redis" TIMEOUT 120)
            else()
                list(APPEND unit_cases ${name})
                set_tests_properties(c.${concept}.${name} PROPERTIES
                                     LABELS "${T_LABELS}" TIMEOUT 60)
            endif()
        endforeach()
    endforeach()
    # The whole binary once more under valgrind (not with sanitizers: they
    # cannot share a process with it); only its unit cases when it has
    # REDIS_CASES (no argument runs every case).
    set(valgrind_cases "")
    if(T_REDIS_CASES)
        set(valgrind_cases ${unit_cases})
    endif()
    if(VALGRIND AND NOT CACHERT_SANITIZE)
        add_test(NAME valgrind.${concept}
                 COMMAND ${VALGRIND} --quiet --error-exitcode=99
                         --leak-check=full --errors-for-leak-kinds=definite
                         $<TARGET_FILE:test_${concept}> ${valgrind_cases})
        list(TRANSFORM T_LABELS REPLACE "^c$" valgrind OUTPUT_VARIABLE vlabels)
        set_tests_properties(valgrind.${concept} PROPERTIES
                             LABELS "${vlabels}" TIMEOUT 300)
    endif()
endfunction()

find_program(VALGRIND valgrind)
if(NOT VALGRIND AND NOT CACHERT_SANITIZE)
    message(WARNING "valgrind not found (Debian package valgrind): the "
                    "valgrind.* ctest entries are not registered")
endif()

add_c_test(globmatch LIBS cachert_core)
add_c_test(store LIBS cachert_core)
add_c_test(engine LIBS cachert_engine)
add_c_test(pool LIBS cachert_engine LABELS c redis)
# Client-side caching (src/tracking.c) on a pool.
add_c_test(tracking LIBS cachert_engine LABELS c redis)
# TLS redis-servers with certificates the test makes with the openssl CLI.
cachert_require_tool(OPENSSL_BIN openssl openssl)
add_c_test(tls LIBS cachert_engine LABELS c redis)
target_compile_definitions(test_tls PRIVATE
    CACHERT_TLS_CERTS_SH="${PROJECT_SOURCE_DIR}/spec/tls_certs.sh")
# A primary, a replica and three redis-sentinel processes per case.
cachert_require_tool(REDIS_SENTINEL_BIN redis-sentinel redis-sentinel)
add_c_test(sentinel LIBS cachert_engine LABELS c redis)
add_c_test(journal LIBS cachert_engine)
# CRC16 and hash tags; two cases check them against a live 6-node Redis
# Cluster (spec/c/cluster_fixture.h).
add_c_test(slot LIBS cachert_engine PkgConfig::HIREDIS
           REDIS_CASES test_slot_agrees_with_cluster_keyslot_on_generated_keys
                       test_slot_map_of_a_live_cluster_covers_every_slot_once)
# The Cluster backend on a live 3 + 3 cluster per case.
add_c_test(cluster LIBS cachert_engine PkgConfig::HIREDIS LABELS c redis)
add_c_test(codec src/codec.c LIBS cachert_core PkgConfig::LUAJIT PkgConfig::MSGPACK)
target_include_directories(test_codec SYSTEM PRIVATE ${LUAJIT_INCLUDE_DIRS})

# busted, run from the source tree (.busted there sets lpath/cpath/helper).
cachert_require_tool(BUSTED busted lua-busted)
cachert_require_tool(LUAJIT_BIN luajit luajit2)
set(spec_env
    CACHERT_BUILD_DIR=${PROJECT_BINARY_DIR}
    "LUA_CPATH=${PROJECT_BINARY_DIR}/lua/?.so\;\;"
    "LUA_PATH=${PROJECT_SOURCE_DIR}/lua/?.lua\;${PROJECT_SOURCE_DIR}/lua/?/init.lua\;\;")
if(CACHERT_SANITIZE)
    # Plain luajit must load the sanitizer runtime before the instrumented
    # cache/core.so; the cachert executable carries its own.
    execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=libasan.so
                    OUTPUT_VARIABLE asan_lib OUTPUT_STRIP_TRAILING_WHITESPACE)
    execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=libubsan.so
                    OUTPUT_VARIABLE ubsan_lib OUTPUT_STRIP_TRAILING_WHITESPACE)
    set(preload "")
    if("address" IN_LIST CACHERT_SANITIZE)
        list(APPEND preload ${asan_lib})
    endif()
    if("undefined" IN_LIST CACHERT_SANITIZE)
        list(APPEND preload ${ubsan_lib})
    endif()
    list(JOIN preload ":" preload)
    set(luajit_env "LD_PRELOAD=${preload}" ASAN_OPTIONS=detect_leaks=0)
    # Specs under cachert start luajit processes too: preload there as well.
    set(cachert_env "LD_PRELOAD=${preload}" ASAN_OPTIONS=detect_leaks=1)
endif()

# Every spec file twice: lua.luajit.<name> (plain luajit) and
# lua.cachert.<name> (the executable). One entry per file, so ctest runs
# them side by side and each has a timeout of its own (the whole directory
# under the sanitizers takes longer than any one timeout should allow).
file(GLOB spec_files CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/spec/*_spec.lua)
foreach(spec_file ${spec_files})
    get_filename_component(spec_name ${spec_file} NAME_WE)
    string(REGEX REPLACE "_spec$" "" spec_name ${spec_name})
    add_test(NAME lua.luajit.${spec_name}
             COMMAND ${BUSTED} --lua=${LUAJIT_BIN} --output=utfTerminal ${spec_file}
             WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
    set_tests_properties(lua.luajit.${spec_name} PROPERTIES LABELS lua TIMEOUT 900
                         ENVIRONMENT "${spec_env};${luajit_env}")
    add_test(NAME lua.cachert.${spec_name}
             COMMAND ${BUSTED} --lua=$<TARGET_FILE:cachert> --output=utfTerminal ${spec_file}
             WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
    set_tests_properties(lua.cachert.${spec_name} PROPERTIES LABELS lua TIMEOUT 900
                         ENVIRONMENT "${spec_env};${cachert_env}")
    # Specs that start a 6-node Redis Cluster (node timeout 1000 ms) take
    # turns: two clusters under load on 2 cores see nodes time out and
    # fail over when no test killed them.
    file(STRINGS ${spec_file} uses_cluster REGEX "cluster_helpers")
    if(uses_cluster)
        set_tests_properties(lua.luajit.${spec_name} lua.cachert.${spec_name}
                             PROPERTIES RESOURCE_LOCK redis_cluster)
    endif()
endforeach()

# The Redis API and failover specs again, every server TLS-only and every
# manager on TLS (spec/helpers.lua, CACHERT_SPEC_TLS).
add_test(NAME lua.tls
         COMMAND ${BUSTED} --lua=$<TARGET_FILE:cachert> --output=utfTerminal
                 spec/redis_spec.lua spec/redis_failover_spec.lua
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(lua.tls PROPERTIES LABELS "lua;redis" TIMEOUT 600
                     ENVIRONMENT "${spec_env};${cachert_env};CACHERT_SPEC_TLS=1")

# The Redis API spec again, every manager finding its primary through
# three sentinels (spec/helpers.lua, CACHERT_SPEC_SENTINEL).
add_test(NAME lua.sentinel
         COMMAND ${BUSTED} --lua=$<TARGET_FILE:cachert> --output=utfTerminal
                 spec/redis_spec.lua
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(lua.sentinel PROPERTIES LABELS "lua;redis" TIMEOUT 600
                     ENVIRONMENT "${spec_env};${cachert_env};CACHERT_SPEC_SENTINEL=1")

# Both at once: TLS to the sentinels, to the data nodes and between them,
# and the failovers under load of sentinel_spec over it.
add_test(NAME lua.sentinel_tls
         COMMAND ${BUSTED} --lua=$<TARGET_FILE:cachert> --output=utfTerminal
                 spec/redis_spec.lua spec/sentinel_spec.lua
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(lua.sentinel_tls PROPERTIES LABELS "lua;redis" TIMEOUT 900
    ENVIRONMENT "${spec_env};${cachert_env};CACHERT_SPEC_SENTINEL=1;CACHERT_SPEC_TLS=1")

# The Redis API spec again on a 3 + 3 Redis Cluster (spec/helpers.lua,
# CACHERT_SPEC_CLUSTER), but for its tests of several databases (a Cluster
# has database 0 only: connect refuses another, see config_spec).
add_test(NAME lua.cluster
         COMMAND ${BUSTED} --lua=$<TARGET_FILE:cachert> --output=utfTerminal
                 --exclude-tags=multidb spec/redis_spec.lua
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(lua.cluster PROPERTIES LABELS "lua;redis" TIMEOUT 600
                     RESOURCE_LOCK redis_cluster
                     ENVIRONMENT "${spec_env};${cachert_env};CACHERT_SPEC_CLUSTER=1")

# The Redis API, failover, fleet and cached specs again with a near cache
# in every manager (CACHE_NEAR_MAX_ITEMS): it must change nothing they see.
add_test(NAME lua.near
         COMMAND ${BUSTED} --lua=$<TARGET_FILE:cachert> --output=utfTerminal
                 spec/redis_spec.lua spec/redis_failover_spec.lua
                 spec/redis_fleet_spec.lua spec/cached_spec.lua
                 spec/cached_options_spec.lua
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(lua.near PROPERTIES LABELS "lua;redis" TIMEOUT 900
                     ENVIRONMENT "${spec_env};${cachert_env};CACHE_NEAR_MAX_ITEMS=10000")

# `require "cache"` after `cmake --install`, from another directory.
add_test(NAME install.luajit
         COMMAND sh ${PROJECT_SOURCE_DIR}/spec/install_check.sh
                 ${PROJECT_BINARY_DIR} ${LUAJIT_BIN})
set_tests_properties(install.luajit PROPERTIES LABELS lua TIMEOUT 120
                     ENVIRONMENT "${luajit_env}")

# `luarocks make` of cachert-scm-1.rockspec into a temporary tree, then plain
# luajit after `luarocks path` (spec/luarocks_check.sh). It builds its own
# plain copy whatever this build is, so the sanitizer build skips it rather
# than run the same thing twice.
if(NOT CACHERT_SANITIZE)
    cachert_require_tool(LUAROCKS_BIN luarocks luarocks)
    add_test(NAME install.luarocks
             COMMAND sh ${PROJECT_SOURCE_DIR}/spec/luarocks_check.sh
                     ${PROJECT_SOURCE_DIR} ${LUAJIT_BIN})
    set_tests_properties(install.luarocks PROPERTIES LABELS lua TIMEOUT 300)
endif()

# The example project of cache.testing (docs/testing.md), run as a user
# would from its own directory: with the cachert executable (modules built
# in) and with plain luajit given the paths. A REDIS_URL to a closed port
# shows that the test managers never read it.
add_test(NAME example.testing
         COMMAND ${BUSTED} --lua=$<TARGET_FILE:cachert> --output=utfTerminal
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}/examples/testing)
set_tests_properties(example.testing PROPERTIES LABELS lua TIMEOUT 120
    ENVIRONMENT "${cachert_env};REDIS_URL=redis://127.0.0.1:1")
add_test(NAME example.testing.luajit
         COMMAND ${BUSTED} --lua=${LUAJIT_BIN} --output=utfTerminal
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}/examples/testing)
set_tests_properties(example.testing.luajit PROPERTIES LABELS lua TIMEOUT 120
    ENVIRONMENT "${spec_env};${luajit_env};REDIS_URL=redis://127.0.0.1:1")

# The RESP writer (src/resp.c): hiredis's formatter and reader are its
# oracles here, in the test only.
add_c_test(resp LIBS cachert_engine PkgConfig::HIREDIS)
# The connections' reply objects (src/reply.c) against hiredis's reader.
add_c_test(reply LIBS cachert_engine PkgConfig::HIREDIS)
