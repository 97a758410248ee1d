/* placeholder: replaced by the codec fuzz driver */
int main(void) { return 0; }
