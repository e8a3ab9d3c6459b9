// Chat formats; see chat.hpp.
#include "model/chat.hpp"

#include "lowbit/error.hpp"

namespace lowbit::model {
namespace {

constexpr std::string_view chatml_start = "<|im_start|>";
constexpr std::string_view deepseek_user = "<\xEF\xBD\x9CUser\xEF\xBD\x9C>";            // <｜User｜>
constexpr std::string_view deepseek_assistant = "<\xEF\xBD\x9C" "Assistant\xEF\xBD\x9C>";  // <｜Assistant｜>
constexpr std::string_view deepseek_end = "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>";

/// The default system message of a ChatML template: the text between
/// "<|im_start|>system\n" and the next "<|im_end|>" inside one string literal
/// of the template, with Jinja's "\n" escapes decoded.
std::string default_system_message(std::string_view jinja) {
  const std::string_view opener = "<|im_start|>system\\n";
  const size_t at = jinja.find(opener);
  if (at == std::string_view::npos) return {};
  const size_t begin = at + opener.size();
  const size_t end = jinja.find("<|im_end|>", begin);
  if (end == std::string_view::npos) return {};
  const std::string_view raw = jinja.substr(begin, end - begin);
  // A Jinja expression in there ("{{ ... }}", quotes) means it is not a literal.
  if (raw.find_first_of("{}'\"") != std::string_view::npos) return {};
  std::string text;
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '\\' && i + 1 < raw.size() && raw[i + 1] == 'n') {
      text += '\n';
      ++i;
    } else {
      text += raw[i];
    }
  }
  return text;
}

}  // namespace

chat_template parse_chat_template(std::string_view jinja) {
  chat_template t;
  if (jinja.find(chatml_start) != std::string_view::npos) {
    t.format = chat_format::chatml;
    t.default_system = default_system_message(jinja);
    return t;
  }
  if (jinja.find(deepseek_user) != std::string_view::npos && jinja.find(deepseek_assistant) != std::string_view::npos) {
    t.format = chat_format::deepseek;
    return t;
  }
  throw Error(status::unsupported,
              "the model's chat template is neither ChatML (<|im_start|>) nor DeepSeek's (<\xEF\xBD\x9CUser\xEF\xBD\x9C>); "
              "lowbit-run --chat supports only those");
}

std::string format_chat(const chat_template& t, const std::vector<chat_message>& messages, bool add_generation_prompt) {
  for (const chat_message& m : messages)
    if (m.role != "system" && m.role != "user" && m.role != "assistant")
      throw Error(status::invalid_argument, "chat role '" + m.role + "' is not system, user or assistant");
  std::string out;
  if (t.format == chat_format::chatml) {
    if (!t.default_system.empty() && (messages.empty() || messages.front().role != "system"))
      out += "<|im_start|>system\n" + t.default_system + "<|im_end|>\n";
    for (const chat_message& m : messages) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
    if (add_generation_prompt) out += "<|im_start|>assistant\n";
    return out;
  }
  // DeepSeek: the system prompt comes first with no marker; each user turn is
  // introduced by <｜User｜>, each assistant turn by <｜Assistant｜> and closed
  // by the end-of-sentence token.
  for (const chat_message& m : messages)
    if (m.role == "system") out += m.content;
  for (const chat_message& m : messages) {
    if (m.role == "user") out += std::string(deepseek_user) + m.content;
    if (m.role == "assistant") out += std::string(deepseek_assistant) + m.content + std::string(deepseek_end);
  }
  if (add_generation_prompt) out += std::string(deepseek_assistant);
  return out;
}

}  // namespace lowbit::model
