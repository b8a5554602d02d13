# veda_enable_sanitizers(<target>): applies VEDA_TSAN / VEDA_ASAN to a target.
if(VEDA_TSAN AND VEDA_ASAN)
  message(FATAL_ERROR "VEDA_TSAN and VEDA_ASAN cannot be combined; configure two build trees")
endif()

function(veda_enable_sanitizers target)
  if(VEDA_TSAN)
    target_compile_options(${target} PRIVATE -fsanitize=thread -g -fno-omit-frame-pointer)
    target_link_options(${target} PRIVATE -fsanitize=thread)
  elseif(VEDA_ASAN)
    target_compile_options(${target} PRIVATE -fsanitize=address,undefined -g
      -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
    target_link_options(${target} PRIVATE -fsanitize=address,undefined)
  endif()
endfunction()
