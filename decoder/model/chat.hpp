// Chat formats: the text a chat model expects around each message.
//
// GGUF files carry the chat template as Jinja. lowbit does not embed a Jinja
// engine; it recognises the formats of the target families from their
// templates and writes them itself: ChatML (SmolLM2, Qwen) and DeepSeek's
// (R1-Distill). ChatML templates that insert a default system message (as
// SmolLM2's does) are honoured: the message is read out of the template text.
// An unrecognised template is an error naming what was expected, never a
// silent guess.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace lowbit::model {

enum class chat_format { chatml, deepseek };

struct chat_message {
  std::string role;     ///< "system", "user" or "assistant"
  std::string content;
};

struct chat_template {
  chat_format format = chat_format::chatml;
  std::string default_system;  ///< ChatML: system message added when the chat has none
};

/// Recognises `jinja` (tokenizer.chat_template). Throws lowbit::Error
/// (unsupported) when it is neither ChatML nor DeepSeek's format.
chat_template parse_chat_template(std::string_view jinja);

/// The prompt text for `messages`, ending with the assistant's turn opened
/// when `add_generation_prompt`. Special tokens appear as text: tokenize with
/// special-token parsing on. BOS is left to the tokenizer's add_bos flag.
std::string format_chat(const chat_template& t, const std::vector<chat_message>& messages,
                        bool add_generation_prompt = true);

}  // namespace lowbit::model
