/* placeholder: replaced by the embedding example */
int main(void) { return 0; }
