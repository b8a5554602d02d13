# veda_set_warnings(<target>): the warning set every PyVeda C++ target builds with.
function(veda_set_warnings target)
  if(MSVC)
    target_compile_options(${target} PRIVATE /W4 $<$<BOOL:${VEDA_WERROR}>:/WX>)
  else()
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow
      -Wnon-virtual-dtor -Wold-style-cast -Wcast-align -Woverloaded-virtual
      $<$<BOOL:${VEDA_WERROR}>:-Werror>)
  endif()
endfunction()
