// Umbrella header for the PyVeda metric registry.
#pragma once

#include "veda/metrics/counter.hpp"
#include "veda/metrics/exemplar.hpp"
#include "veda/metrics/family.hpp"
#include "veda/metrics/gauge.hpp"
#include "veda/metrics/histogram.hpp"
#include "veda/metrics/names.hpp"
#include "veda/metrics/protobuf_format.hpp"
#include "veda/metrics/registry.hpp"
#include "veda/metrics/sample_family.hpp"
#include "veda/metrics/text_format.hpp"
#include "veda/metrics/text_parser.hpp"
