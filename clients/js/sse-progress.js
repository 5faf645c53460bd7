// Placeholder: the client module of issue 10 is being written in this file.
export {};
