# libFuzzer targets (clang only), label "fuzz": each runs for a bounded
# time (CACHERT_FUZZ_SECONDS) from the corpus seeds in spec/fuzz/corpus_*.
enable_testing()
if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "CACHERT_FUZZ needs clang (cmake -DCMAKE_C_COMPILER=clang)")
endif()
set(CACHERT_FUZZ_SECONDS 20 CACHE STRING "Seconds per fuzz target in ctest")

function(add_fuzz_target concept)
    add_executable(fuzz_${concept} spec/fuzz/fuzz_${concept}.c ${ARGN})
    target_include_directories(fuzz_${concept} PRIVATE src spec/c)
    target_compile_options(fuzz_${concept} PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_options(fuzz_${concept} PRIVATE -fsanitize=fuzzer,address,undefined)
    set(corpus ${PROJECT_BINARY_DIR}/corpus_${concept})
    add_test(NAME fuzz.${concept}
             COMMAND ${CMAKE_COMMAND} -E env ASAN_OPTIONS=detect_leaks=1
                     $<TARGET_FILE:fuzz_${concept}>
                     -max_total_time=${CACHERT_FUZZ_SECONDS} -max_len=4096
                     ${corpus} ${PROJECT_SOURCE_DIR}/spec/fuzz/corpus_${concept})
    # libFuzzer stops itself after CACHERT_FUZZ_SECONDS; the margin covers
    # start-up and the final leak check.
    math(EXPR limit "${CACHERT_FUZZ_SECONDS} * 2 + 60")
    set_tests_properties(fuzz.${concept} PROPERTIES LABELS fuzz TIMEOUT ${limit})
    file(MAKE_DIRECTORY ${corpus})
endfunction()

add_fuzz_target(globmatch src/globmatch.c)
add_fuzz_target(codec src/codec.c src/status.c)
target_include_directories(fuzz_codec SYSTEM PRIVATE ${LUAJIT_INCLUDE_DIRS})
target_link_libraries(fuzz_codec PRIVATE PkgConfig::LUAJIT PkgConfig::MSGPACK)
